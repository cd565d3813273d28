//! What a word is: the splitter that quern's word-based apps (wordcount,
//! indexer) share, natively and in their WebAssembly twins
//! (`examples/wasm-wordcount`, `examples/wasm-indexer`), so that both give
//! the same output byte for byte.
//!
//! # Invariants
//! - Depends on nothing but `std`, and builds for `wasm32-wasip1`.

/// Calls `f` with each word of `data`, lowercased: maximal runs of
/// characters for which `char::is_alphabetic` holds, after lossy UTF-8
/// decoding.
///
/// ```
/// let mut words = Vec::new();
/// quern_words::for_each_word(b"It's Zoe's CAF\xc3\x89, na\xffive!", |w| words.push(w.to_owned()));
/// assert_eq!(words, ["it", "s", "zoe", "s", "café", "na", "ive"]);
/// ```
pub fn for_each_word(data: &[u8], mut f: impl FnMut(&str)) {
    let mut lower = LowerBuffer::default();
    match std::str::from_utf8(data) {
        Ok(text) => for_each_word_of_text(text, &mut lower, &mut f),
        Err(_) => for_each_unicode_word(&String::from_utf8_lossy(data), &mut lower, &mut f),
    }
}

/// Bytes classified together.
const BLOCK: usize = 64;

/// [`for_each_word`] of text, 64 bytes at a time while they are ASCII: a
/// block's letters and capitals become two bit masks (eight bytes per step,
/// in a `u64`), and a word starts at each letter after a non-letter and
/// ends at each non-letter after a letter, found with `trailing_zeros`. A
/// word without capitals is passed as it lies in `text`. From the first
/// block with another character on, [`for_each_unicode_word`] takes over.
fn for_each_word_of_text(text: &str, lower: &mut LowerBuffer, f: &mut impl FnMut(&str)) {
    let data = text.as_bytes();
    // The word that runs past the blocks so far: its start, and whether it
    // has a capital so far.
    let mut open: Option<(usize, bool)> = None;
    for (index, block) in data.chunks(BLOCK).enumerate() {
        let base = index * BLOCK;
        let Some((letters, capitals)) = ascii_block_masks(block) else {
            // `base` follows an ASCII byte, and a word starts at a letter:
            // either is a character boundary.
            let from = open.map_or(base, |(start, _)| start);
            return for_each_unicode_word(&text[from..], lower, f);
        };
        let before = letters << 1 | u64::from(open.is_some());
        let mut starts = letters & !before;
        // Past a short (last) block nothing is a letter, so a word that
        // runs to the end of `text` ends there.
        let mut ends = !letters & before;
        while ends != 0 {
            let end = ends.trailing_zeros();
            ends &= ends - 1;
            let (start, capital) = match open.take() {
                Some((start, capital)) => (start, capital || capitals & below(end) != 0),
                None => {
                    let start = starts.trailing_zeros();
                    starts &= starts - 1;
                    (base + start as usize, capitals & below(end) & !below(start) != 0)
                }
            };
            emit_ascii_word(&text[start..base + end as usize], capital, lower, f);
        }
        // A word still open runs to the block's end.
        open = match open {
            Some((start, capital)) => Some((start, capital || capitals != 0)),
            None if starts != 0 => {
                let start = starts.trailing_zeros();
                Some((base + start as usize, capitals & !below(start) != 0))
            }
            None => None,
        };
    }
    if let Some((start, capital)) = open {
        emit_ascii_word(&text[start..], capital, lower, f);
    }
}

/// Calls `f` with `word` (ASCII letters) lowercased.
#[inline]
fn emit_ascii_word(word: &str, capital: bool, lower: &mut LowerBuffer, f: &mut impl FnMut(&str)) {
    if capital { f(lower.lowercase(word.as_bytes())) } else { f(word) }
}

/// [`for_each_word`] of any text, a character at a time.
fn for_each_unicode_word(text: &str, lower: &mut LowerBuffer, f: &mut impl FnMut(&str)) {
    let mut emit = |word: &str| {
        if word.is_ascii() {
            // ASCII lowercasing equals `str::to_lowercase` here, without an
            // allocation.
            f(lower.lowercase(word.as_bytes()));
        } else {
            f(&word.to_lowercase());
        }
    };
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphabetic(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                emit(&text[s..i]);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        emit(&text[s..]);
    }
}

/// Bit `i` of the first mask is set if `block[i]` is an ASCII letter, of
/// the second if it is a capital; `None` if `block` (at most [`BLOCK`]
/// bytes) is not all ASCII.
#[inline]
fn ascii_block_masks(block: &[u8]) -> Option<(u64, u64)> {
    let mut padded = [0u8; BLOCK];
    let bytes: &[u8] = if block.len() == BLOCK {
        block
    } else {
        padded[..block.len()].copy_from_slice(block);
        &padded
    };
    let (mut letters, mut capitals, mut high) = (0u64, 0u64, 0u64);
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        high |= x;
        let (l, c) = ascii_word_masks(x);
        letters |= l << (i * 8);
        capitals |= c << (i * 8);
    }
    (high & TOPS == 0).then_some((letters, capitals))
}

/// Each byte's top bit.
const TOPS: u64 = 0x8080_8080_8080_8080;

/// [`ascii_block_masks`] of eight ASCII bytes, without a branch: with the
/// case bit set, a letter is in `a..=z`, and adding `0x80 - b'a'` and
/// `0x80 - b'{'` to each byte (below 0x80, so no carry leaves it) sets its
/// top bit when it is at least `a`, respectively past `z`. A capital is a
/// letter without the case bit (bit 5, shifted to the top).
#[inline]
fn ascii_word_masks(x: u64) -> (u64, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let y = x | (ONES * 0x20);
    let at_least_a = y.wrapping_add(ONES * (0x80 - u64::from(b'a')));
    let past_z = y.wrapping_add(ONES * (0x80 - u64::from(b'z') - 1));
    let letters = at_least_a & !past_z & TOPS;
    let capitals = letters & !(x << 2);
    (gather_tops(letters), gather_tops(capitals))
}

/// The top bits of a `u64`'s bytes (all its other bits clear) as its low
/// eight bits, byte `i`'s as bit `i`: the multiplier moves byte `i`'s to
/// bit 56 + `i`, and no two of its partial products meet.
#[inline]
fn gather_tops(tops: u64) -> u64 {
    ((tops >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// The bits below bit `n` (at most 64).
#[inline]
fn below(n: u32) -> u64 {
    u64::MAX.checked_shr(64 - n).unwrap_or(0)
}

/// Where words with capitals are lowercased: on the stack when short.
#[derive(Default)]
struct LowerBuffer {
    short: [u8; 32],
    long: String,
}

impl LowerBuffer {
    /// `word`, ASCII letters, lowercased (a letter's lowercase sets one
    /// bit).
    fn lowercase(&mut self, word: &[u8]) -> &str {
        if word.len() <= self.short.len() {
            for (lower, &b) in self.short.iter_mut().zip(word) {
                *lower = b | 0x20;
            }
            // ASCII: this cannot fail.
            std::str::from_utf8(&self.short[..word.len()]).unwrap_or_default()
        } else {
            self.long.clear();
            self.long.extend(word.iter().map(|&b| char::from(b | 0x20)));
            &self.long
        }
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
        fn ascii_text_matches_the_definition(s in "[ -~\t\n]{0,80}", long in "[a-zA-Z]{30,150}") {
            // Mostly short words, and one that may span two or three blocks.
            let s = format!("{s} {long} {s}");
            proptest::prop_assert_eq!(found(&s), defined(&s));
        }

        #[test]
        fn text_that_turns_unicode_after_ascii_blocks_matches_the_definition(
            ascii in "[ -~\t\n]{0,150}",
            unicode in "\\PC{1,20}",
            more in "[ -~\t\n]{0,80}",
        ) {
            // The blocks before the first other character are split as
            // ASCII, the rest by characters, wherever the switch falls.
            let s = format!("{ascii}{unicode}{more}");
            proptest::prop_assert_eq!(found(&s), defined(&s));
        }
    }
}
