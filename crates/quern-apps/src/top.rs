//! `top`: the `n` keys with the largest counts, from `KEY<TAB>COUNT` lines
//! (what `wordcount` writes), largest first (equal counts by key). Each map
//! attempt keeps its split's top `n` and emits them at its end (in-mapper
//! combining: a split of a million words sends `n` pairs); one reducer
//! keeps the top `n` of those.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use quern_core::{
    App, AppError, AttemptInfo, MapContext, MapSession, OutputDecl, Record, ReduceContext, SpecError, Values,
};

/// The top `n` keys by count.
#[derive(Debug, Clone, Copy)]
pub struct Top {
    n: usize,
}

/// The key every map emits under: one reducer sees every candidate.
const ALL: &[u8] = b"";

impl Top {
    /// The top `n` (at least 1).
    pub fn new(n: &str) -> Result<Top, SpecError> {
        match n.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Top { n }),
            _ => Err(SpecError::BadParam { param: "n".into(), message: format!("{n:?} is not a count of at least 1") }),
        }
    }
}

/// The best `n` (count, key) pairs seen: a min-heap of the kept ones.
struct Best {
    n: usize,
    kept: BinaryHeap<Reverse<(u64, Reverse<Vec<u8>>)>>,
}

impl Best {
    fn new(n: usize) -> Best {
        Best { n, kept: BinaryHeap::with_capacity(n + 1) }
    }

    fn offer(&mut self, count: u64, key: &[u8]) {
        if self.kept.len() == self.n
            && let Some(Reverse((least, Reverse(least_key)))) = self.kept.peek()
            && (count, Reverse(key)) <= (*least, Reverse(least_key.as_slice()))
        {
            return;
        }
        self.kept.push(Reverse((count, Reverse(key.to_vec()))));
        if self.kept.len() > self.n {
            self.kept.pop();
        }
    }

    /// The kept pairs, best first.
    fn into_ranked(self) -> Vec<(u64, Vec<u8>)> {
        let mut ranked: Vec<(u64, Vec<u8>)> = self.kept.into_iter().map(|Reverse((c, Reverse(k)))| (c, k)).collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        ranked
    }
}

/// A `KEY<TAB>COUNT` line's key and count.
fn parse(line: &[u8]) -> Result<(&[u8], u64), AppError> {
    let bad = || AppError::permanent(format!("{:?} is not KEY<TAB>COUNT", String::from_utf8_lossy(line)));
    let tab = line.iter().rposition(|&b| b == b'\t').ok_or_else(bad)?;
    let count = std::str::from_utf8(&line[tab + 1..]).ok().and_then(|c| c.trim_end().parse().ok()).ok_or_else(bad)?;
    Ok((&line[..tab], count))
}

/// A candidate as a map emits it: `COUNT<TAB>KEY`.
fn candidate(count: u64, key: &[u8]) -> Vec<u8> {
    let mut value = itoa::Buffer::new().format(count).as_bytes().to_vec();
    value.push(b'\t');
    value.extend_from_slice(key);
    value
}

impl App for Top {
    /// One line: its pair as a candidate (what a map session does for the
    /// whole split, kept to the best `n`).
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        let (key, count) = parse(record.data)?;
        ctx.emit(ALL, &candidate(count, key));
        Ok(())
    }

    fn map_session<'s>(&'s self, _: &AttemptInfo<'s>) -> Result<Option<Box<dyn MapSession + 's>>, AppError> {
        Ok(Some(Box::new(TopOfSplit(Best::new(self.n)))))
    }

    fn reduce(&self, _: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        let mut best = Best::new(self.n);
        while let Some(value) = values.next() {
            let (count, key) = value
                .iter()
                .position(|&b| b == b'\t')
                .and_then(|tab| Some((std::str::from_utf8(&value[..tab]).ok()?.parse().ok()?, &value[tab + 1..])))
                .ok_or_else(|| AppError::permanent("a candidate is not COUNT<TAB>KEY"))?;
            best.offer(count, key);
        }
        for (count, key) in best.into_ranked() {
            ctx.emit(&key, itoa::Buffer::new().format(count).as_bytes());
        }
        Ok(())
    }

    fn outputs(&self) -> Vec<OutputDecl> {
        vec![OutputDecl::default_output().with_default_reducers(1)]
    }
}

/// A map attempt's best `n`, emitted when its split is done.
struct TopOfSplit(Best);

impl MapSession for TopOfSplit {
    fn map(&mut self, record: &Record<'_>, _: &mut MapContext<'_>) -> Result<(), AppError> {
        let (key, count) = parse(record.data)?;
        self.0.offer(count, key);
        Ok(())
    }

    fn finish(self: Box<Self>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        for (count, key) in self.0.into_ranked() {
            ctx.emit(ALL, &candidate(count, &key));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_are_kept_largest_first_and_ties_by_key() {
        let mut best = Best::new(3);
        for (count, key) in [(5, "e"), (9, "a"), (5, "b"), (1, "z"), (9, "c"), (7, "d")] {
            best.offer(count, key.as_bytes());
        }
        let ranked: Vec<(u64, String)> =
            best.into_ranked().into_iter().map(|(c, k)| (c, String::from_utf8(k).expect("utf-8"))).collect();
        assert_eq!(ranked, [(9, "a".to_owned()), (9, "c".to_owned()), (7, "d".to_owned())]);
    }

    #[test]
    fn lines_that_are_not_key_tab_count_are_refused_and_n_must_be_positive() {
        assert_eq!(parse(b"the\t42").expect("parses"), (&b"the"[..], 42));
        assert_eq!(parse(b"a\tb\t7").expect("the last TAB"), (&b"a\tb"[..], 7));
        assert!(parse(b"no count").is_err());
        assert!(parse(b"word\tmany").is_err());
        assert!(Top::new("0").is_err() && Top::new("x").is_err());
        assert_eq!(Top::new("10").expect("ten").n, 10);
    }
}
