//! Facts read from a posting's text when the board's fields do not state them: plain text
//! from HTML, the salary, the job type and the workplace.

use super::posting::{Interval, JobType, Salary, SalarySource, Workplace};

/// The job type a title or description states ("Intern" in a title, "full-time" in the
/// text), title first.
pub fn job_type_from_text(title: &str, description: &str) -> Option<JobType> {
    let title = title.to_lowercase();
    let in_title = [
        ("intern", JobType::Internship),
        ("internship", JobType::Internship),
        ("contract", JobType::Contract),
        ("contractor", JobType::Contract),
        ("freelance", JobType::Contract),
        ("part-time", JobType::PartTime),
        ("temporary", JobType::Temporary),
    ];
    for word in title.split(|c: char| !(c.is_alphanumeric() || c == '-')) {
        if let Some((_, kind)) = in_title.iter().find(|(w, _)| *w == word) {
            return Some(*kind);
        }
    }
    if title.contains("part time") {
        return Some(JobType::PartTime);
    }
    let text = description.to_lowercase();
    [
        ("full-time", JobType::FullTime),
        ("full time", JobType::FullTime),
        ("part-time", JobType::PartTime),
        ("part time", JobType::PartTime),
        ("internship", JobType::Internship),
        ("contract role", JobType::Contract),
        ("contract position", JobType::Contract),
        ("temporary", JobType::Temporary),
    ]
    .iter()
    .filter_map(|(phrase, kind)| text.find(phrase).map(|at| (at, *kind)))
    .min_by_key(|(at, _)| *at)
    .map(|(_, kind)| kind)
}

/// Remote or hybrid from a location such as "Remote - US" or "London (Hybrid)".
pub fn workplace_from_text(location: &str, title: &str) -> Workplace {
    let has = |word: &str| {
        [location, title].iter().any(|s| {
            s.split(|c: char| !c.is_alphanumeric())
                .any(|w| w.eq_ignore_ascii_case(word))
        })
    };
    if has("hybrid") {
        Workplace::Hybrid
    } else if has("remote") {
        Workplace::Remote
    } else {
        Workplace::Unknown
    }
}

/// Decodes HTML character references: the named ones job descriptions use, and every
/// numeric one. An unknown or broken reference is kept as written.
pub fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest[1..]
            .find(|c: char| c == ';' || c == '&' || c.is_whitespace())
            .map(|i| i + 1)
            .filter(|&i| i <= 12 && rest.as_bytes()[i] == b';');
        let decoded = end.and_then(|end| entity(&rest[1..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|c| *c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "hellip" => '…',
        "bull" => '•',
        "middot" => '·',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "times" => '×',
        _ => return None,
    })
}

/// HTML to plain text: tags dropped (block ends become line breaks, `<script>` and
/// `<style>` dropped whole), entities decoded, runs of blanks collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut raw = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        raw.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find('>') else {
            // A lone '<' is text.
            raw.push_str(rest);
            rest = "";
            break;
        };
        let tag = rest[1..end].trim_start_matches('/').to_ascii_lowercase();
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        rest = &rest[end + 1..];
        if name == "script" || name == "style" {
            let close = format!("</{name}");
            match rest.to_ascii_lowercase().find(&close) {
                Some(at) => {
                    rest = &rest[at..];
                    rest = rest.find('>').map_or("", |i| &rest[i + 1..]);
                }
                None => rest = "",
            }
            continue;
        }
        let block = matches!(
            name.as_str(),
            "p" | "br"
                | "div"
                | "li"
                | "ul"
                | "ol"
                | "tr"
                | "h1"
                | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
                | "section"
                | "article"
                | "table"
        );
        raw.push(if block { '\n' } else { ' ' });
    }
    raw.push_str(rest);
    let decoded = decode_entities(&raw);
    let mut out = String::with_capacity(decoded.len());
    for line in decoded.lines() {
        let mut words = line.split_whitespace().peekable();
        if words.peek().is_none() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        let mut first = true;
        for word in words {
            if !first {
                out.push(' ');
            }
            out.push_str(word);
            first = false;
        }
    }
    out
}

/// A salary stated in text: `$150,000 - $190,000`, `$150k–$190k`, `USD 120000 to 140000`,
/// `₹30,00,000`, `₹30 LPA`, `€60.000`, `$45/hr` (× 2080), `£4,000 per month` (× 12).
///
/// Only amounts marked with a currency (a symbol or an ISO code) count; the first plausible
/// one wins. Without a stated period, amounts under 1,000 are hourly and the rest yearly;
/// an annual amount under 10,000 (a bonus, a stipend) or past 5,000,000 (1,000,000,000 for
/// INR, JPY and KRW: a funding round) is not a salary.
pub fn salary_from_text(text: &str) -> Option<Salary> {
    let mut from = 0;
    while let Some((currency, _, after)) = next_currency(text, from) {
        from = after;
        if let Some(salary) = salary_at(text, currency, after) {
            return Some(salary);
        }
    }
    None
}

/// Symbols and codes, longest first where one is a prefix of another.
const CURRENCIES: [(&str, &str); 16] = [
    ("CA$", "CAD"),
    ("C$", "CAD"),
    ("AU$", "AUD"),
    ("A$", "AUD"),
    ("US$", "USD"),
    ("$", "USD"),
    ("£", "GBP"),
    ("€", "EUR"),
    ("₹", "INR"),
    ("USD", "USD"),
    ("EUR", "EUR"),
    ("GBP", "GBP"),
    ("INR", "INR"),
    ("CAD", "CAD"),
    ("AUD", "AUD"),
    ("Rs.", "INR"),
];

/// The next currency marker at or after `from`: (ISO code, where it starts, where it ends).
fn next_currency(text: &str, from: usize) -> Option<(&'static str, usize, usize)> {
    let mut at = from;
    while at < text.len() {
        let rest = &text[at..];
        let next = rest.find(['$', '£', '€', '₹', 'U', 'E', 'G', 'I', 'C', 'A', 'R'])?;
        let at_marker = at + next;
        let here = &text[at_marker..];
        for (marker, code) in CURRENCIES {
            if let Some(after) = here.strip_prefix(marker) {
                let is_code = marker.chars().all(|c| c.is_ascii_alphabetic());
                let word_start = text[..at_marker]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !c.is_alphanumeric());
                // "CA$" starts with a letter: the letters must start a word.
                let letters_ok =
                    !marker.starts_with(|c: char| c.is_ascii_alphabetic()) || word_start;
                let code_ok = !is_code || after.chars().next().is_none_or(|c| !c.is_alphabetic());
                if letters_ok && code_ok {
                    return Some((code, at_marker, at_marker + marker.len()));
                }
            }
        }
        at = at_marker + here.chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// One amount: its value (units applied) and whether a unit (k, lakh, …) was written.
struct Amount {
    value: f64,
    /// The unit's factor (1 when none was written).
    factor: f64,
    end: usize,
    /// "LPA": lakhs per annum.
    yearly: bool,
}

fn amount_at(text: &str, from: usize) -> Option<Amount> {
    let bytes = text.as_bytes();
    let mut i = from;
    while i < bytes.len() && bytes[i] == b' ' {
        i += 1;
    }
    let start = i;
    let mut digits = String::new();
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_digit() {
            digits.push(b as char);
            i += 1;
        } else if b == b',' && i + 1 < bytes.len() && bytes[i + 1].is_ascii_digit() {
            i += 1; // a grouping comma (Western or Indian)
        } else if b == b'.' && i + 1 < bytes.len() && bytes[i + 1].is_ascii_digit() {
            let run = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if run == 3 && !digits.contains('.') {
                i += 1; // "60.000": a grouping dot
            } else {
                digits.push('.');
                i += 1;
            }
        } else {
            break;
        }
    }
    if i == start || digits.is_empty() {
        return None;
    }
    let mut value: f64 = digits.parse().ok()?;
    let rest = text[i..].to_ascii_lowercase();
    let trimmed = rest.trim_start();
    let gap = rest.len() - trimmed.len();
    let word_end = |w: &str| {
        trimmed.starts_with(w)
            && trimmed[w.len()..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphabetic())
    };
    let mut factor = 1.0;
    let mut yearly = false;
    let mut end = i;
    if rest.starts_with('k') && rest[1..].chars().next().is_none_or(|c| !c.is_alphabetic()) {
        factor = 1_000.0;
        end += 1;
    } else if rest.starts_with('m') && rest[1..].chars().next().is_none_or(|c| !c.is_alphabetic()) {
        factor = 1_000_000.0;
        end += 1;
    } else if let Some(w) = ["million", "mn"].into_iter().find(|w| word_end(w)) {
        factor = 1_000_000.0;
        end += gap + w.len();
    } else if let Some(w) = ["billion", "bn"].into_iter().find(|w| word_end(w)) {
        factor = 1_000_000_000.0;
        end += gap + w.len();
    } else if word_end("lpa") {
        factor = 100_000.0;
        yearly = true;
        end += gap + 3;
    } else if let Some(w) = ["lakhs", "lakh", "lacs", "lac", "l"]
        .into_iter()
        .find(|w| word_end(w))
    {
        factor = 100_000.0;
        end += gap + w.len();
    } else if let Some(w) = ["crores", "crore", "cr"].into_iter().find(|w| word_end(w)) {
        factor = 10_000_000.0;
        end += gap + w.len();
    }
    value *= factor;
    Some(Amount {
        value,
        factor,
        end,
        yearly,
    })
}

fn salary_at(text: &str, currency: &'static str, after: usize) -> Option<Salary> {
    let first = amount_at(text, after)?;
    let mut end = first.end;
    let mut second = None;
    // A range: "-", "–", "—", "to", then maybe the currency again.
    let rest = &text[end..];
    let trimmed = rest.trim_start();
    let sep = ["-", "–", "—", "to "]
        .into_iter()
        .find(|s| trimmed.starts_with(s));
    if let Some(sep) = sep {
        let mut at = end + (rest.len() - trimmed.len()) + sep.len();
        let tail = text[at..].trim_start();
        at += text[at..].len() - tail.len();
        if let Some((_, start, marker_end)) = next_currency(text, at) {
            if start == at {
                at = marker_end;
            }
        }
        if let Some(amount) = amount_at(text, at) {
            end = amount.end;
            second = Some(amount);
        }
    }
    let (mut lo, hi) = match &second {
        Some(hi) => {
            let mut lo = first.value;
            // "$150-190k": the unit written once applies to both.
            if first.factor == 1.0 && hi.factor > 1.0 && lo < 1_000.0 {
                lo *= hi.factor;
            }
            (lo, Some(hi.value))
        }
        None => (first.value, None),
    };
    if lo <= 0.0 {
        lo = hi.unwrap_or(0.0);
    }
    let yearly_unit = first.yearly || second.as_ref().is_some_and(|a| a.yearly);
    let top = hi.unwrap_or(lo);
    let interval = period_after(&text[end..]).unwrap_or(if yearly_unit || top >= 1_000.0 {
        Interval::Yearly
    } else {
        Interval::Hourly
    });
    let salary = Salary::stated(
        Some(lo),
        Some(top),
        Some(currency),
        interval,
        SalarySource::Description,
    )?;
    let annual_top = salary.max?;
    let ceiling = if matches!(currency, "INR" | "JPY" | "KRW") {
        1_000_000_000.0
    } else {
        5_000_000.0
    };
    (10_000.0..=ceiling).contains(&annual_top).then_some(salary)
}

/// A period written right after an amount: "/hr", "per hour", "an hour", "a month", "/yr",
/// "per annum", "p.a.", ….
fn period_after(text: &str) -> Option<Interval> {
    let head: String = text.chars().take(24).collect::<String>().to_lowercase();
    let head = head.trim_start();
    let head = head
        .strip_prefix("usd")
        .or_else(|| head.strip_prefix("inr"))
        .or_else(|| head.strip_prefix("eur"))
        .or_else(|| head.strip_prefix("gbp"))
        .unwrap_or(head)
        .trim_start();
    let periods = [
        ("hour", Interval::Hourly),
        ("hr", Interval::Hourly),
        ("day", Interval::Daily),
        ("week", Interval::Weekly),
        ("wk", Interval::Weekly),
        ("month", Interval::Monthly),
        ("mo", Interval::Monthly),
        ("year", Interval::Yearly),
        ("yr", Interval::Yearly),
        ("annum", Interval::Yearly),
        ("annual", Interval::Yearly),
        ("p.a.", Interval::Yearly),
    ];
    for lead in ["/", "per ", "an ", "a ", ""] {
        if let Some(tail) = head.strip_prefix(lead) {
            if lead.is_empty() {
                // Bare words: "hourly", "monthly", "annually".
                for (word, interval) in [
                    ("hourly", Interval::Hourly),
                    ("daily", Interval::Daily),
                    ("weekly", Interval::Weekly),
                    ("monthly", Interval::Monthly),
                    ("annually", Interval::Yearly),
                    ("yearly", Interval::Yearly),
                    ("p.a.", Interval::Yearly),
                ] {
                    if tail.starts_with(word) {
                        return Some(interval);
                    }
                }
                continue;
            }
            for (word, interval) in periods {
                if tail.starts_with(word) {
                    return Some(interval);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yearly(text: &str) -> Option<(f64, f64, String)> {
        salary_from_text(text).map(|s| (s.min.unwrap(), s.max.unwrap(), s.currency.unwrap()))
    }

    #[test]
    fn salaries_are_read_from_text() {
        let usd = |lo: f64, hi: f64| Some((lo, hi, "USD".to_string()));
        type Case<'a> = (&'a str, Option<(f64, f64, String)>);
        let cases: &[Case] = &[
            (
                "The range is $150,000 - $190,000 a year.",
                usd(150_000.0, 190_000.0),
            ),
            ("Pay: $150k–$190k + equity", usd(150_000.0, 190_000.0)),
            ("Pay: $150K to $190K", usd(150_000.0, 190_000.0)),
            ("$150-190k base", usd(150_000.0, 190_000.0)),
            ("USD 120000 - 140000", usd(120_000.0, 140_000.0)),
            ("$45/hr", usd(93_600.0, 93_600.0)),
            ("$40 - $50 per hour", usd(83_200.0, 104_000.0)),
            ("$55 an hour", usd(114_400.0, 114_400.0)),
            (
                "₹30,00,000 - ₹45,00,000",
                Some((3_000_000.0, 4_500_000.0, "INR".into())),
            ),
            (
                "CTC ₹30 LPA",
                Some((3_000_000.0, 3_000_000.0, "INR".into())),
            ),
            (
                "₹25-35 lakh",
                Some((2_500_000.0, 3_500_000.0, "INR".into())),
            ),
            (
                "€60.000 – €80.000",
                Some((60_000.0, 80_000.0, "EUR".into())),
            ),
            ("£4,000 per month", Some((48_000.0, 48_000.0, "GBP".into()))),
            (
                "CA$120,000–CA$150,000",
                Some((120_000.0, 150_000.0, "CAD".into())),
            ),
            // Not salaries.
            ("We raised $150M in our Series C.", None),
            ("We raised $150 million.", None),
            ("A $5,000 signing bonus.", None),
            ("10+ years, 401(k), 3 days a week", None),
            ("Our ENGINEERING team", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(&yearly(text), want, "{text}");
        }
        let s = salary_from_text("$45/hr").unwrap();
        assert_eq!(
            (s.interval, s.source),
            (Interval::Hourly, SalarySource::Description)
        );
    }

    #[test]
    fn html_becomes_text_and_greenhouse_content_is_decoded_twice() {
        let encoded = "&lt;p&gt;Salary &amp;amp; benefits: &amp;#36;150k&lt;/p&gt;&lt;ul&gt;&lt;li&gt;Rust&lt;/li&gt;&lt;li&gt;5+ years&lt;/li&gt;&lt;/ul&gt;";
        assert_eq!(
            html_to_text(&decode_entities(encoded)),
            "Salary & benefits: $150k\nRust\n5+ years"
        );
        assert_eq!(
            html_to_text(
                "<div>a&nbsp;&nbsp;b</div><script>x()</script><style>p{}</style>c &unknown; 1 < 2"
            ),
            "a b\nc &unknown; 1 < 2"
        );
        assert_eq!(decode_entities("&#8377;&#x20B9; &amp"), "₹₹ &amp");
    }

    #[test]
    fn words_for_job_types_and_workplaces() {
        for (word, want) in [
            ("Full-time", Some(JobType::FullTime)),
            ("FullTime", Some(JobType::FullTime)),
            ("full time", Some(JobType::FullTime)),
            ("Part-Time", Some(JobType::PartTime)),
            ("Intern", Some(JobType::Internship)),
            ("Contractor", Some(JobType::Contract)),
            ("Temporary", Some(JobType::Temporary)),
            ("volunteer", None),
        ] {
            assert_eq!(JobType::parse(word), want, "{word}");
        }
        assert_eq!(Workplace::parse("on-site"), Workplace::OnSite);
        assert_eq!(Workplace::parse("OnSite"), Workplace::OnSite);
        assert_eq!(Workplace::parse("unspecified"), Workplace::Unknown);
        assert_eq!(
            job_type_from_text("Software Engineering Intern", "full-time"),
            Some(JobType::Internship)
        );
        assert_eq!(
            job_type_from_text("Engineer", "This is a full-time role; part-time ok"),
            Some(JobType::FullTime)
        );
        assert_eq!(
            workplace_from_text("London (Hybrid)", ""),
            Workplace::Hybrid
        );
        assert_eq!(workplace_from_text("Remote - US", ""), Workplace::Remote);
        assert_eq!(workplace_from_text("Remoteville", ""), Workplace::Unknown);
    }
}
