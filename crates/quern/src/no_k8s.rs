//! `quern k8s` in a build without the `kubernetes` feature: what to do
//! instead.

use clap::Args;

/// `k8s`'s arguments in a build without it: anything, so that the answer is
/// [`NO_KUBERNETES`] rather than a complaint about an argument.
#[derive(Args)]
#[command(disable_help_flag = true)]
pub(crate) struct NoKubernetesArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<std::ffi::OsString>,
}

/// What `k8s` says in a build without it.
pub(crate) const NO_KUBERNETES: &str = concat!(
    "this quern was built without Kubernetes support (the `kubernetes` feature, which brings kube-rs). ",
    "Build it with `cargo install quern --version ",
    env!("CARGO_PKG_VERSION"),
    " --features kubernetes`, or `cargo run -p quern --features kubernetes -- k8s …` in quern's repository; ",
    "the container image (Dockerfile) has it."
);
