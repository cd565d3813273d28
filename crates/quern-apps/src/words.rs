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
    if data.is_ascii() {
        return for_each_ascii_word(data, &mut f);
    }
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

/// [`for_each_word`] of ASCII text: the letters are `a-z` and `A-Z`, so a
/// word is found with a byte test per byte and lowercased in place in a
/// reused buffer, without decoding or checking it again.
fn for_each_ascii_word(data: &[u8], f: &mut impl FnMut(&str)) {
    // ASCII, checked by the caller: this cannot fail.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut words = |lower: &mut String| {
        let mut i = 0;
        while i < data.len() {
            let Some(start) = data[i..].iter().position(u8::is_ascii_alphabetic).map(|p| i + p) else { return };
            let end = data[start..].iter().position(|b| !b.is_ascii_alphabetic()).map_or(data.len(), |p| start + p);
            lower.clear();
            // A letter's lowercase sets one bit; short words copy faster
            // byte by byte than through `memcpy`.
            lower.extend(text[start..end].bytes().map(|b| char::from(b | 0x20)));
            f(lower);
            i = end;
        }
    };
    // A callback that splits words itself (the buffer is taken) gets a
    // buffer of its own.
    match LOWER.try_with(|buf| buf.try_borrow_mut().map(|mut buf| words(&mut buf)).is_ok()) {
        Ok(true) => {}
        _ => words(&mut String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of `s` as `for_each_word` finds them.
    fn found(s: &str) -> Vec<String> {
        let mut got = Vec::new();
        for_each_word(s.as_bytes(), |w| got.push(w.to_owned()));
        got
    }

    /// The words of `s` by the definition.
    fn defined(s: &str) -> Vec<String> {
        s.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    }

    proptest::proptest! {
        #[test]
        fn matches_the_definition(s in "\\PC{0,40}") {
            proptest::prop_assert_eq!(found(&s), defined(&s));
        }

        #[test]
        fn ascii_text_matches_the_definition(s in "[ -~\t\n]{0,80}", long in "[a-zA-Z]{30,70}") {
            // Mostly short words, and one longer than most buffers' start.
            let s = format!("{s} {long} {s}");
            proptest::prop_assert_eq!(found(&s), defined(&s));
        }
    }
}
