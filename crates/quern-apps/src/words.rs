//! Splitting text into words, shared by the word-based apps.

use std::cell::RefCell;

thread_local! {
    static LOWER: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Calls `f` with each word of `data`, lowercased: maximal runs of
/// characters for which `char::is_alphabetic` holds, after lossy UTF-8
/// decoding.
///
/// ```
/// let mut words = Vec::new();
/// quern_apps::for_each_word(b"It's Zoe's CAF\xc3\x89, na\xffive!", |w| words.push(w.to_owned()));
/// assert_eq!(words, ["it", "s", "zoe", "s", "café", "na", "ive"]);
/// ```
pub fn for_each_word(data: &[u8], mut f: impl FnMut(&str)) {
    let text = String::from_utf8_lossy(data);
    let mut emit = |word: &str| {
        if word.is_ascii() {
            // ASCII lowercasing equals `str::to_lowercase` here, without an
            // allocation per word.
            LOWER.with_borrow_mut(|buf| {
                buf.clear();
                buf.push_str(word);
                buf.make_ascii_lowercase();
                f(buf);
            });
        } else {
            f(&word.to_lowercase());
        }
    };
    let bytes = text.as_bytes();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (alpha, len) = if b < 0x80 {
            (b.is_ascii_alphabetic(), 1)
        } else {
            let c = text[i..].chars().next().expect("invariant: i is on a char boundary");
            (c.is_alphabetic(), c.len_utf8())
        };
        match (alpha, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                emit(&text[s..i]);
                start = None;
            }
            _ => {}
        }
        i += len;
    }
    if let Some(s) = start {
        emit(&text[s..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn matches_the_definition(s in "\\PC{0,40}") {
            let mut got = Vec::new();
            for_each_word(s.as_bytes(), |w| got.push(w.to_owned()));
            let expected: Vec<String> = s
                .split(|c: char| !c.is_alphabetic())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
