//! The apps a binary knows: each registered with a name, a line of help, the
//! parameters it takes and a function that builds it from a job's params.
//!
//! The CLI, and later the worker, look apps up here by the name in the
//! [`crate::JobSpec`], so the same registry serves every runtime.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::app::App;
use crate::error::SpecError;
use crate::params::{ParamSpec, Params};

/// What a registry says about one app (and what a worker tells the
/// coordinator it offers).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppInfo {
    /// The name jobs use (`--app NAME`).
    pub name: String,
    /// One line of help.
    pub about: String,
    /// The parameters it takes.
    pub params: Vec<ParamSpec>,
}

impl AppInfo {
    /// An app known by its name alone (no help, no declared parameters).
    pub fn named(name: impl Into<String>) -> AppInfo {
        AppInfo { name: name.into(), about: String::new(), params: Vec::new() }
    }
}

type BuildFn = dyn Fn(&Params) -> Result<Arc<dyn App>, SpecError> + Send + Sync;

/// Apps by name.
///
/// ```
/// use std::sync::Arc;
/// use quern_core::{App, AppError, AppRegistry, MapContext, ParamSpec, Record};
///
/// struct Echo;
/// impl App for Echo {
///     fn map(&self, r: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
///         ctx.emit(r.data, b"");
///         Ok(())
///     }
/// }
///
/// let mut registry = AppRegistry::new();
/// registry.register("echo", "copies lines", vec![], |_| Ok(Arc::new(Echo)));
/// assert!(registry.build("echo", &Default::default()).is_ok());
/// assert!(registry.build("ohce", &Default::default()).is_err());
/// ```
#[derive(Clone, Default)]
pub struct AppRegistry {
    apps: BTreeMap<String, (AppInfo, Arc<BuildFn>)>,
}

impl AppRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the app `name`.
    pub fn register(
        &mut self,
        name: &str,
        about: &str,
        params: Vec<ParamSpec>,
        build: impl Fn(&Params) -> Result<Arc<dyn App>, SpecError> + Send + Sync + 'static,
    ) -> &mut Self {
        let info = AppInfo { name: name.to_owned(), about: about.to_owned(), params };
        self.apps.insert(name.to_owned(), (info, Arc::new(build)));
        self
    }

    /// Every registered app, by name.
    pub fn apps(&self) -> impl Iterator<Item = &AppInfo> {
        self.apps.values().map(|(info, _)| info)
    }

    /// What the registry knows about `name`.
    pub fn info(&self, name: &str) -> Option<&AppInfo> {
        self.apps.get(name).map(|(info, _)| info)
    }

    /// Builds app `name` from `params`, refusing unknown and missing
    /// parameters.
    pub fn build(&self, name: &str, params: &BTreeMap<String, String>) -> Result<Arc<dyn App>, SpecError> {
        let (info, build) = self.apps.get(name).ok_or_else(|| SpecError::UnknownApp {
            name: name.to_owned(),
            known: self.apps.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        let known = || {
            let names: Vec<&str> = info.params.iter().map(|p| p.name.as_str()).collect();
            if names.is_empty() { "no parameters".to_owned() } else { names.join(", ") }
        };
        if let Some(param) = params.keys().find(|k| !info.params.iter().any(|p| &p.name == *k)) {
            return Err(SpecError::UnknownParam { app: name.to_owned(), param: param.clone(), known: known() });
        }
        if let Some(missing) = info.params.iter().find(|p| p.required && !params.contains_key(&p.name)) {
            return Err(SpecError::MissingParam {
                app: name.to_owned(),
                param: missing.name.clone(),
                help: missing.help.clone(),
            });
        }
        build(&Params::new(params.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{MapContext, Record};
    use crate::error::AppError;

    struct Nop;
    impl App for Nop {
        fn map(&self, _: &Record<'_>, _: &mut MapContext<'_>) -> Result<(), AppError> {
            Ok(())
        }
    }

    fn registry() -> AppRegistry {
        let mut r = AppRegistry::new();
        r.register("nop", "does nothing", vec![ParamSpec::required("p", "a thing")], |_| Ok(Arc::new(Nop)));
        r
    }

    #[test]
    fn unknown_and_missing_params_are_named() {
        let r = registry();
        let err = r.build("nop", &BTreeMap::new()).err().expect("missing param");
        assert_eq!(err.to_string(), "app 'nop' needs parameter 'p': a thing");
        let params = BTreeMap::from([("p".to_owned(), "1".to_owned()), ("q".to_owned(), "2".to_owned())]);
        let err = r.build("nop", &params).err().expect("unknown param");
        assert_eq!(err.to_string(), "app 'nop' has no parameter 'q' (it takes: p)");
        let err = r.build("pon", &params).err().expect("unknown app");
        assert_eq!(err.to_string(), "unknown app 'pon' (known apps: nop)");
    }
}
