//! App parameters (`--param name=value`): what an app declares it takes
//! ([`ParamSpec`]) and what a job gives it ([`Params`]).

use std::collections::BTreeMap;

use crate::error::SpecError;

/// A parameter an app takes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParamSpec {
    /// Its name, as in `--param NAME=value`.
    pub name: String,
    /// One line of help.
    pub help: String,
    /// Whether a job must give it.
    pub required: bool,
}

impl ParamSpec {
    /// A parameter every job must give.
    pub fn required(name: impl Into<String>, help: impl Into<String>) -> Self {
        ParamSpec { name: name.into(), help: help.into(), required: true }
    }

    /// A parameter a job may give.
    pub fn optional(name: impl Into<String>, help: impl Into<String>) -> Self {
        ParamSpec { name: name.into(), help: help.into(), required: false }
    }
}

/// The parameters of one job, already checked against the app's
/// [`ParamSpec`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Parameters from name/value pairs.
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Params { values }
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `name`, or an error naming it.
    pub fn require(&self, name: &str) -> Result<&str, SpecError> {
        self.get(name).ok_or_else(|| SpecError::BadParam { param: name.to_owned(), message: "is required".to_owned() })
    }

    /// Every name/value pair.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
