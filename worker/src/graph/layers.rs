//! What wraps every step invocation (a task, a branch, one map item), as tower layers so a
//! step's code holds only its business logic: a tracing span with timing, panic capture
//! (a panicking step fails its job; the worker lives on), and the step timeout.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tracing::Instrument;

use crate::kind::JobError;

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, JobError>> + Send>>;

/// One invocation of a step's code.
pub struct StepCall<T> {
    pub step: &'static str,
    pub item: Option<usize>,
    pub work: BoxFuture<T>,
}

/// Runs `call` through the standard stack: trace, catch panics, time out.
pub(crate) async fn invoke<T: Send + 'static>(
    call: StepCall<T>,
    timeout: Option<Duration>,
) -> Result<T, JobError> {
    ServiceBuilder::new()
        .layer(TraceLayer)
        .layer(CatchPanicLayer)
        .layer(TimeoutLayer(timeout))
        .service(Run)
        .oneshot(call)
        .await
}

/// The innermost service: awaits the step's own future.
#[derive(Clone, Copy)]
pub struct Run;

impl<T: Send + 'static> Service<StepCall<T>> for Run {
    type Response = T;
    type Error = JobError;
    type Future = BoxFuture<T>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), JobError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: StepCall<T>) -> Self::Future {
        call.work
    }
}

/// Fails a step that runs longer than its limit (`step_timeout`).
#[derive(Clone, Copy)]
pub struct TimeoutLayer(pub Option<Duration>);

#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Option<Duration>,
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            limit: self.0,
        }
    }
}

impl<S, T> Service<StepCall<T>> for Timeout<S>
where
    S: Service<StepCall<T>, Response = T, Error = JobError>,
    S::Future: Send + 'static,
    T: Send + 'static,
{
    type Response = T;
    type Error = JobError;
    type Future = BoxFuture<T>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), JobError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: StepCall<T>) -> Self::Future {
        let step = call.step;
        let work = self.inner.call(call);
        match self.limit {
            None => Box::pin(work),
            Some(limit) => Box::pin(async move {
                tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                    Err(JobError::Timeout(format!(
                        "step `{step}` exceeded its step_timeout of {}s",
                        limit.as_secs_f64()
                    )))
                })
            }),
        }
    }
}

/// Turns a panic inside a step into a permanent failure of the job.
#[derive(Clone, Copy)]
pub struct CatchPanicLayer;

#[derive(Clone)]
pub struct CatchPanic<S>(S);

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic(inner)
    }
}

impl<S, T> Service<StepCall<T>> for CatchPanic<S>
where
    S: Service<StepCall<T>, Response = T, Error = JobError>,
    S::Future: Send + 'static,
    T: Send + 'static,
{
    type Response = T;
    type Error = JobError;
    type Future = BoxFuture<T>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), JobError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, call: StepCall<T>) -> Self::Future {
        let step = call.step;
        let work = AssertUnwindSafe(self.0.call(call)).catch_unwind();
        Box::pin(async move {
            work.await.unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".into());
                Err(JobError::Permanent(format!(
                    "step `{step}` panicked: {message}"
                )))
            })
        })
    }
}

/// A span per invocation (step, item), with its duration and outcome logged.
#[derive(Clone, Copy)]
pub struct TraceLayer;

#[derive(Clone)]
pub struct Trace<S>(S);

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Trace<S> {
        Trace(inner)
    }
}

impl<S, T> Service<StepCall<T>> for Trace<S>
where
    S: Service<StepCall<T>, Response = T, Error = JobError>,
    S::Future: Send + 'static,
    T: Send + 'static,
{
    type Response = T;
    type Error = JobError;
    type Future = BoxFuture<T>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), JobError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, call: StepCall<T>) -> Self::Future {
        let span = tracing::info_span!("step", step = call.step, item = call.item);
        let work = self.0.call(call);
        Box::pin(
            async move {
                let started = Instant::now();
                let result = work.await;
                let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                match &result {
                    Ok(_) => tracing::debug!(elapsed_ms, "step finished"),
                    Err(err) if err.is_stop() => {
                        tracing::debug!(elapsed_ms, why = %err, "step stopped")
                    }
                    Err(err) => tracing::warn!(elapsed_ms, error = %err, "step failed"),
                }
                result
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<T: Send + 'static>(
        work: impl Future<Output = Result<T, JobError>> + Send + 'static,
    ) -> StepCall<T> {
        StepCall {
            step: "s",
            item: None,
            work: Box::pin(work),
        }
    }

    #[tokio::test]
    async fn results_pass_through() {
        assert_eq!(invoke(call(async { Ok(7) }), None).await, Ok(7));
        assert_eq!(
            invoke::<()>(call(async { Err(JobError::Transient("x".into())) }), None).await,
            Err(JobError::Transient("x".into()))
        );
    }

    #[tokio::test]
    async fn panics_become_permanent_failures() {
        let result = invoke::<()>(call(async { panic!("boom") }), None).await;
        assert_eq!(
            result,
            Err(JobError::Permanent("step `s` panicked: boom".into()))
        );
    }

    #[tokio::test]
    async fn slow_steps_time_out() {
        let slow = call(async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        });
        let result = invoke(slow, Some(Duration::from_millis(20))).await;
        assert!(matches!(result, Err(JobError::Timeout(m)) if m.contains("step_timeout")));
    }
}
