UPDATE schedules
SET spec = json_extract(w.value, '$.spec'),
    state = json_extract(w.value, '$.state'),
    version = schedules.version + 1,
    due_at = json_extract(w.value, '$.due_at')
FROM json_each(?1) AS w
WHERE schedules.id = json_extract(w.value, '$.id')
  AND schedules.version = json_extract(w.value, '$.expected')
RETURNING schedules.id
