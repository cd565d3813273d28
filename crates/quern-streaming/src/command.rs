//! A command line, split into words as a shell would split it.

use std::fmt;

use thiserror::Error;

/// A command as the user wrote it (`python3 mapper.py --top 10`) and its
/// words, split by POSIX shell rules (quotes and backslashes; no
/// expansions, pipes or redirections: no shell is run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    text: String,
    words: Vec<String>,
}

/// A command line that cannot be split into words.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// Nothing to run.
    #[error("the command is empty")]
    Empty,
    /// A quote without its pair, or a trailing backslash.
    #[error("cannot split {0:?} into words: a quote is not closed or a backslash ends it")]
    Unbalanced(String),
}

impl CommandLine {
    /// Splits `text` into words.
    ///
    /// ```
    /// let c = quern_streaming::CommandLine::parse("python3 'my mapper.py' --sep '\\t'").unwrap();
    /// assert_eq!(c.program(), "python3");
    /// assert_eq!(c.args(), ["my mapper.py", "--sep", "\\t"]);
    /// ```
    pub fn parse(text: &str) -> Result<CommandLine, CommandError> {
        let words = shlex::split(text).ok_or_else(|| CommandError::Unbalanced(text.to_owned()))?;
        if words.is_empty() {
            return Err(CommandError::Empty);
        }
        Ok(CommandLine { text: text.to_owned(), words })
    }

    /// The program: the first word.
    pub fn program(&self) -> &str {
        &self.words[0]
    }

    /// The words after the program.
    pub fn args(&self) -> &[String] {
        &self.words[1..]
    }

    /// The same command with another program: the words joined again,
    /// each quoted as a shell would need.
    ///
    /// ```
    /// let c = quern_streaming::CommandLine::parse("/home/me/wc.wasm map 'a b'").unwrap();
    /// assert_eq!(c.with_program("wc.wasm").as_str(), "wc.wasm map 'a b'");
    /// ```
    pub fn with_program(&self, program: &str) -> CommandLine {
        let mut words = self.words.clone();
        words[0] = program.to_owned();
        let text = shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "));
        CommandLine { text, words }
    }

    /// The command as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_split_as_a_shell_would_without_running_one() {
        let c = CommandLine::parse(r#"awk -F'\t' "{ print \$1 }" | sort"#).expect("parses");
        assert_eq!(c.program(), "awk");
        // No pipe: `|` and `sort` are words given to awk.
        assert_eq!(c.args(), ["-F\\t", "{ print $1 }", "|", "sort"]);
        assert_eq!(c.to_string(), r#"`awk -F'\t' "{ print \$1 }" | sort`"#);
    }

    #[test]
    fn an_empty_or_unbalanced_command_is_refused() {
        assert_eq!(CommandLine::parse("  "), Err(CommandError::Empty));
        let err = CommandLine::parse("python3 'mapper.py").expect_err("an open quote");
        assert!(err.to_string().contains("python3 'mapper.py"), "{err}");
    }
}
