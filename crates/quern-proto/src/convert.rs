//! Conversions between the wire types and `quern-core`'s, in one place:
//! `From` towards the wire, `TryFrom` (or a `decode` method) from it, so a
//! malformed message is refused with a [`DecodeError`] naming the field,
//! never a panic and never a silent default.

use quern_core::{AppInfo, AttemptId, JobId, ParamSpec, Segment, TaskId, TaskKind};

use crate::generated as pb;

/// A message field that does not hold what the protocol says it must.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A required field is absent.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// A field holds a value outside its range.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl From<TaskKind> for pb::TaskKind {
    fn from(kind: TaskKind) -> pb::TaskKind {
        match kind {
            TaskKind::Map => pb::TaskKind::Map,
            TaskKind::Reduce => pb::TaskKind::Reduce,
        }
    }
}

/// A task kind as it travels (an `i32`, as prost keeps enums).
pub fn task_kind_from_wire(kind: i32) -> Result<TaskKind, DecodeError> {
    match pb::TaskKind::try_from(kind) {
        Ok(pb::TaskKind::Map) => Ok(TaskKind::Map),
        Ok(pb::TaskKind::Reduce) => Ok(TaskKind::Reduce),
        _ => Err(DecodeError::Invalid { field: "kind", problem: format!("{kind} is not map or reduce") }),
    }
}

impl From<(JobId, AttemptId)> for pb::AttemptRef {
    fn from((job_id, a): (JobId, AttemptId)) -> pb::AttemptRef {
        pb::AttemptRef {
            job_id: job_id.0,
            kind: pb::TaskKind::from(a.task.kind) as i32,
            index: a.task.index,
            attempt: a.attempt,
        }
    }
}

impl pb::AttemptRef {
    /// The job and attempt this names. Attempt numbers start at 1.
    pub fn decode(&self) -> Result<(JobId, AttemptId), DecodeError> {
        let task = TaskId { kind: task_kind_from_wire(self.kind)?, index: self.index };
        if self.attempt == 0 {
            return Err(DecodeError::Invalid { field: "attempt", problem: "attempt numbers start at 1".into() });
        }
        Ok((JobId(self.job_id), AttemptId { task, attempt: self.attempt }))
    }
}

/// Decodes an optional attempt field.
pub fn attempt_from_wire(r: Option<&pb::AttemptRef>) -> Result<(JobId, AttemptId), DecodeError> {
    r.ok_or(DecodeError::Missing("attempt"))?.decode()
}

impl From<Segment> for pb::Segment {
    fn from(s: Segment) -> pb::Segment {
        pb::Segment { offset: s.offset, len: s.len, records: s.records, raw_len: s.raw_len }
    }
}

impl From<pb::Segment> for Segment {
    fn from(s: pb::Segment) -> Segment {
        Segment { offset: s.offset, len: s.len, records: s.records, raw_len: s.raw_len }
    }
}

impl From<pb::AppDescription> for AppInfo {
    fn from(a: pb::AppDescription) -> AppInfo {
        AppInfo {
            name: a.name,
            about: a.about,
            params: a
                .params
                .into_iter()
                .map(|p| ParamSpec { name: p.name, help: p.help, required: p.required })
                .collect(),
        }
    }
}

impl From<&AppInfo> for pb::AppDescription {
    fn from(a: &AppInfo) -> pb::AppDescription {
        pb::AppDescription {
            name: a.name.clone(),
            about: a.about.clone(),
            params: a
                .params
                .iter()
                .map(|p| pb::AppParameter { name: p.name.clone(), help: p.help.clone(), required: p.required })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_round_trip_and_malformed_ones_are_refused() {
        let a = AttemptId { task: TaskId { kind: TaskKind::Reduce, index: 7 }, attempt: 3 };
        let wire = pb::AttemptRef::from((JobId(42), a));
        assert_eq!(wire.decode(), Ok((JobId(42), a)));
        assert_eq!(attempt_from_wire(None), Err(DecodeError::Missing("attempt")));
        let zero = pb::AttemptRef { attempt: 0, ..wire };
        assert!(zero.decode().is_err_and(|e| e.to_string().contains("start at 1")));
        let unknown = pb::AttemptRef { kind: 99, ..wire };
        assert!(unknown.decode().is_err_and(|e| e.to_string().contains("99 is not map or reduce")));
        let unspecified = pb::AttemptRef { kind: pb::TaskKind::Unspecified as i32, ..wire };
        assert!(unspecified.decode().is_err());
    }

    #[test]
    fn segments_round_trip() {
        let s = Segment { offset: 1, len: 2, records: 3, raw_len: 4 };
        assert_eq!(Segment::from(pb::Segment::from(s)), s);
    }
}
