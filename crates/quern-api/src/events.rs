//! The event stream: every stored change, as server-sent events, for the
//! dashboard and for scripts that follow a job without polling.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use utoipa::IntoParams;

use crate::dto::Event;
use crate::{ApiError, ApiState, Authorized};

/// Which events to follow.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventQuery {
    /// Only this job's events (and none about workers).
    job: Option<u64>,
}

/// Every change from now on, as server-sent events: each `data:` is an
/// [`Event`] in JSON, its `event:` the type. A subscriber that falls far
/// behind gets one `lagged` event (then should read the state afresh).
/// Users follow one of their jobs (`?job=ID`); admins may follow all.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery), security(("bearer" = [])),
    responses((status = 200, description = "text/event-stream of Event", content_type = "text/event-stream", body = Event),
        (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
        (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn stream(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    query: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(q) = query?;
    // A user follows one of their own jobs; admins may follow everything.
    match q.job {
        Some(job) => {
            let view = s.handle.job(quern_core::JobId(job)).await?;
            if !caller.may_see(&view.owner) {
                return Err(quern_coordinator::Error::NoSuchJob(view.id).into());
            }
        }
        None if !caller.is_admin() => {
            return Err(ApiError::forbidden("only an admin follows every job: add ?job=ID of one of yours"));
        }
        None => {}
    }
    let events = BroadcastStream::new(s.handle.events()).filter_map(move |e| async move {
        match e {
            Ok(e) => {
                let e = Event::from(e);
                if q.job.is_some_and(|job| e.job() != Some(job)) {
                    return None;
                }
                let kind = serde_json::to_value(&e).ok()?.get("type")?.as_str()?.to_owned();
                Some(Ok(SseEvent::default().event(kind).json_data(&e).ok()?))
            }
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                Some(Ok(SseEvent::default().event("lagged").data(format!("{{\"missed\":{n}}}"))))
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
