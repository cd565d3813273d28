//! Total order: range partitioning by cut points chosen from a sample of the
//! keys (Hadoop's `TotalOrderPartitioner`, TeraSort's sampler), so that an
//! output's `part-r-00000`, `part-r-00001`, … concatenated in order are
//! sorted.
//!
//! Whoever plans a job samples the input's keys (`quern_engine`'s sampler),
//! and [`CutPoints::choose`] picks at most `R − 1` cut points from the sorted
//! sample; they are stored in the plan ([`crate::PlannedOutput::cut_points`]),
//! so every map attempt, in any process, partitions with the same points:
//! the partition of a key is a pure function of the plan.
//!
//! **The rule.** With cut points `c₀ < c₁ < … < cₘ₋₁` (`m ≤ R − 1`), key `k`
//! goes to partition `#{i : cᵢ ≤ k}` (a binary search): partition `i + 1`
//! starts at `cᵢ`, and a key equal to a cut point goes to the upper side.
//! Partitions are therefore monotone in the key (`k₁ ≤ k₂ ⇒ p(k₁) ≤ p(k₂)`),
//! and equal keys always meet in one reducer.
//!
//! **Skew.** All records of one key go to one reducer, so a reducer gets at
//! least the share of the most frequent key: a key that alone is more than
//! twice a reducer's share makes some reducer get more than twice its share,
//! whatever the cut points. Within that limit, [`CutPoints::choose`] makes
//! the largest partition of the sample as small as any cut could (cuts fall
//! only between distinct keys, never inside a run of equal ones, so no two
//! cut points are equal), and among such cuts places each one nearest to an
//! even split of what remains. When the sample has fewer distinct keys than
//! reducers, there are fewer cut points, and the last reducers get nothing.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The cut points of one output's total order: strictly increasing keys,
/// each the first key of the next partition. Serialised as a list of hex
/// strings.
///
/// ```
/// use quern_core::CutPoints;
/// let cuts = CutPoints::new(vec![b"g".to_vec(), b"p".to_vec()]).unwrap();
/// assert_eq!(cuts.partition(b"apple"), 0);
/// assert_eq!(cuts.partition(b"g"), 1); // equal to a cut point: the upper side
/// assert_eq!(cuts.partition(b"zebra"), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutPoints(Vec<Vec<u8>>);

impl CutPoints {
    /// Cut points from `points`, which must be strictly increasing.
    pub fn new(points: Vec<Vec<u8>>) -> Result<CutPoints, String> {
        if let Some(i) = points.windows(2).position(|w| w[0] >= w[1]) {
            return Err(format!("cut points must be strictly increasing (#{} is not below #{})", i, i + 1));
        }
        Ok(CutPoints(points))
    }

    /// The points, in increasing order.
    pub fn points(&self) -> &[Vec<u8>] {
        &self.0
    }

    /// How many points there are (partitions used: one more).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (every key goes to partition 0).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The partition of `key`: how many cut points are at most `key`.
    pub fn partition(&self, key: &[u8]) -> u32 {
        self.0.partition_point(|c| c.as_slice() <= key) as u32
    }

    /// Checks the points suit an output of `reducers` reducers (at most
    /// `reducers − 1` of them).
    pub fn check(&self, reducers: u32) -> Result<(), String> {
        if self.0.len() >= reducers.max(1) as usize {
            return Err(format!(
                "{} cut points for {reducers} reducers (at most {})",
                self.0.len(),
                reducers.max(1) - 1
            ));
        }
        Ok(())
    }

    /// Chooses at most `reducers − 1` cut points from `sample`, a sorted
    /// sample of keys (duplicates included: they are what skew looks like).
    ///
    /// First the smallest bound `C` on any partition's share of the sample
    /// that `reducers` contiguous partitions can meet is found (a binary
    /// search over a greedy packing of the runs of equal keys); then the
    /// cuts are placed from the left, each at the boundary between distinct
    /// keys nearest to an even split of the keys left over the partitions
    /// left (the lower one of two as near), among the boundaries that keep every partition within `C` and
    /// leave a remainder the remaining partitions can take within `C`. Each
    /// cut point is the shortest prefix of the key after the boundary that
    /// is above the key before it.
    ///
    /// ```
    /// use quern_core::CutPoints;
    /// let mut sample: Vec<&[u8]> = vec![b"hot"; 6];
    /// sample.extend([b"a".as_slice(), b"b", b"c", b"x", b"y", b"z"]);
    /// sample.sort();
    /// // The hot key alone is half the sample: it gets a reducer of its own.
    /// let cuts = CutPoints::choose(&sample, 4);
    /// let sizes = sample.iter().fold([0; 4], |mut n, k| { n[cuts.partition(k) as usize] += 1; n });
    /// assert_eq!(sizes, [3, 6, 1, 2]);
    /// ```
    pub fn choose(sample: &[&[u8]], reducers: u32) -> CutPoints {
        debug_assert!(sample.windows(2).all(|w| w[0] <= w[1]), "invariant: the sample is sorted");
        let groups = reducers as usize;
        let n = sample.len() as u64;
        if groups <= 1 || sample.is_empty() {
            return CutPoints::default();
        }
        // Runs of equal keys ("atoms"): `before[a]` keys come before atom a,
        // and `before[atoms]` = n.
        let mut before: Vec<u64> =
            (0..sample.len()).filter(|&i| i == 0 || sample[i] != sample[i - 1]).map(|i| i as u64).collect();
        let atoms = before.len();
        before.push(n);
        // The furthest end of a partition starting at atom `from` within `cap`.
        let reach = |from: usize, cap: u64| before.partition_point(|&b| b <= before[from] + cap) - 1;

        // The smallest cap that `groups` partitions can meet.
        let fits = |cap: u64| {
            let (mut at, mut used) = (0, 0);
            while at < atoms {
                used += 1;
                if used > groups {
                    return false;
                }
                at = reach(at, cap);
            }
            true
        };
        let biggest = before.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        let (mut lo, mut hi) = (biggest, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) { hi = mid } else { lo = mid + 1 }
        }
        let cap = lo;

        // `tail[k]`: the first atom from which the rest fits in k partitions
        // within the cap (packing greedily from the right covers the most).
        let mut tail = vec![atoms; groups + 1];
        for k in 1..=groups {
            let end = tail[k - 1];
            tail[k] = before.partition_point(|&b| b + cap < before[end]);
        }

        let mut cuts = Vec::new();
        let mut at = 0usize;
        for j in 1..groups {
            if at >= atoms {
                break;
            }
            // Partition j takes atoms [at, c); `left` partitions share the
            // keys from `at` on, evenly: c·left nearest to `aim`.
            let left = (groups - j + 1) as u64;
            let aim = before[at] * (left - 1) + n;
            let lowest = (at + 1).max(tail[groups - j]);
            let highest = reach(at, cap);
            debug_assert!(lowest <= highest, "invariant: a feasible cut exists");
            let first_over = before.partition_point(|&b| b * left < aim).clamp(lowest, highest);
            let c = if first_over > lowest
                && aim.abs_diff(before[first_over - 1] * left) <= aim.abs_diff(before[first_over] * left)
            {
                first_over - 1
            } else {
                first_over
            };
            if c >= atoms {
                break;
            }
            let (below, above) = (sample[before[c] as usize - 1], sample[before[c] as usize]);
            cuts.push(separator(below, above).to_vec());
            at = c;
        }
        CutPoints(cuts)
    }
}

/// The shortest prefix of `above` that is greater than `below` (given
/// `below < above`): every key between them goes where `above` goes.
fn separator<'a>(below: &[u8], above: &'a [u8]) -> &'a [u8] {
    let common = below.iter().zip(above).take_while(|(a, b)| a == b).count();
    &above[..(common + 1).min(above.len())]
}

impl Serialize for CutPoints {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|p| hex(p)))
    }
}

impl<'de> Deserialize<'de> for CutPoints {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CutPoints, D::Error> {
        let strings = Vec::<String>::deserialize(d)?;
        let points = strings.iter().map(|s| unhex(s)).collect::<Result<Vec<_>, _>>().map_err(D::Error::custom)?;
        CutPoints::new(points).map_err(D::Error::custom)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("a cut point is not hex: {s:?}")),
    };
    if !s.len().is_multiple_of(2) {
        return Err(format!("a cut point is not hex (odd length): {s:?}"));
    }
    s.as_bytes().chunks(2).map(|p| Ok((digit(p[0])? << 4) | digit(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// How many sample keys each of `reducers` partitions gets.
    fn sizes(sample: &[&[u8]], cuts: &CutPoints, reducers: u32) -> Vec<usize> {
        let mut n = vec![0; reducers as usize];
        for k in sample {
            n[cuts.partition(k) as usize] += 1;
        }
        n
    }

    fn sorted(keys: &[Vec<u8>]) -> Vec<&[u8]> {
        let mut v: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        v.sort();
        v
    }

    /// The smallest largest partition any cut of `sample` into `reducers`
    /// ranges can reach, by trying every cut (small inputs only).
    fn best_by_brute_force(sample: &[&[u8]], reducers: u32) -> usize {
        let mut atoms: Vec<usize> = Vec::new();
        for (i, k) in sample.iter().enumerate() {
            if i == 0 || sample[i - 1] != *k {
                atoms.push(0);
            }
            *atoms.last_mut().expect("pushed") += 1;
        }
        // best[g][a]: smallest max over the first a atoms in g partitions.
        let m = atoms.len();
        let mut best = vec![vec![usize::MAX; m + 1]; reducers as usize + 1];
        best[0][0] = 0;
        for g in 1..=reducers as usize {
            for a in 0..=m {
                for b in 0..=a {
                    if best[g - 1][b] == usize::MAX {
                        continue;
                    }
                    let part: usize = atoms[b..a].iter().sum();
                    best[g][a] = best[g][a].min(best[g - 1][b].max(part));
                }
            }
        }
        best[reducers as usize][m]
    }

    #[test]
    fn uniform_keys_split_evenly() {
        let keys: Vec<Vec<u8>> = (0..1000u32).map(|i| format!("{i:04}").into_bytes()).collect();
        let sample = sorted(&keys);
        let cuts = CutPoints::choose(&sample, 4);
        assert_eq!(cuts.points(), [b"025".to_vec(), b"05".to_vec(), b"075".to_vec()], "shortest separators");
        assert_eq!(sizes(&sample, &cuts, 4), [250, 250, 250, 250]);
        assert_eq!(sizes(&sample, &CutPoints::choose(&sample, 3), 3), [333, 333, 334]);
        assert!(CutPoints::choose(&sample, 1).is_empty());
        assert!(CutPoints::choose(&[], 4).is_empty());
    }

    #[test]
    fn equal_keys_never_make_equal_cut_points_and_the_rest_still_spreads() {
        // 60% one hot key in the middle, the rest unique.
        let mut keys: Vec<Vec<u8>> = (0..400u32).map(|i| format!("k{i:03}").into_bytes()).collect();
        keys.extend(std::iter::repeat_n(b"k200".to_vec(), 600));
        let sample = sorted(&keys);
        let cuts = CutPoints::choose(&sample, 4);
        assert_eq!(cuts.len(), 3, "every reducer used: {cuts:?}");
        let n = sizes(&sample, &cuts, 4);
        assert_eq!(*n.iter().max().expect("sizes"), 601, "the hot key's partition is all it must be: {n:?}");
        assert!(n.iter().all(|&s| s > 0), "{n:?}");

        // Fewer distinct keys than reducers: fewer cut points.
        let few: Vec<Vec<u8>> = [b"a", b"a", b"b", b"c", b"c"].iter().map(|k| k.to_vec()).collect();
        let cuts = CutPoints::choose(&sorted(&few), 8);
        assert_eq!(cuts.points(), [b"b".to_vec(), b"c".to_vec()]);
        let one: Vec<Vec<u8>> = vec![b"same".to_vec(); 50];
        assert!(CutPoints::choose(&sorted(&one), 8).is_empty());
    }

    #[test]
    fn a_few_hot_keys_among_many_leave_no_reducer_over_twice_its_share() {
        // 20,000 keys: three hot ones with 10%, 8% and 5%, a lukewarm
        // band of 100 keys with 30 copies each, and the rest unique.
        let mut keys = Vec::new();
        for (hot, copies) in [(b"h1".as_slice(), 2000), (b"m5", 1600), (b"t9", 1000)] {
            keys.extend(std::iter::repeat_n(hot.to_vec(), copies));
        }
        for i in 0..100u32 {
            keys.extend(std::iter::repeat_n(format!("w{i:03}").into_bytes(), 30));
        }
        let mut x = 7u64;
        while keys.len() < 20_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            keys.push(format!("{:012x}", x >> 16).into_bytes());
        }
        let sample = sorted(&keys);
        for reducers in [2u32, 3, 5, 8, 10, 14] {
            let cuts = CutPoints::choose(&sample, reducers);
            let n = sizes(&sample, &cuts, reducers);
            let share = sample.len() / reducers as usize;
            assert!(n.iter().all(|&s| s <= 2 * share), "{reducers} reducers: {n:?}");
            assert!(n.iter().all(|&s| s > 0), "{reducers} reducers: {n:?}");
        }
    }

    #[test]
    fn shortest_separators_lie_between_their_neighbours() {
        assert_eq!(separator(b"abc", b"abd"), b"abd");
        assert_eq!(separator(b"abc", b"abzzz"), b"abz");
        assert_eq!(separator(b"ab", b"abc"), b"abc");
        assert_eq!(separator(b"", b"x"), b"x");
        assert_eq!(separator(b"a", b"b\xff"), b"b");
    }

    #[test]
    fn cut_points_are_hex_in_json_and_bad_ones_are_refused() {
        let cuts = CutPoints::new(vec![vec![0, 0xff], b"z".to_vec()]).expect("increasing");
        let json = serde_json::to_string(&cuts).expect("serialise");
        assert_eq!(json, r#"["00ff","7a"]"#);
        assert_eq!(serde_json::from_str::<CutPoints>(&json).expect("parse"), cuts);
        assert!(serde_json::from_str::<CutPoints>(r#"["7a","00ff"]"#).is_err(), "not increasing");
        assert!(serde_json::from_str::<CutPoints>(r#"["7a","7a"]"#).is_err(), "equal points");
        assert!(serde_json::from_str::<CutPoints>(r#"["7g"]"#).is_err(), "not hex");
        assert!(serde_json::from_str::<CutPoints>(r#"["7"]"#).is_err(), "odd length");
        assert_eq!(cuts.check(3), Ok(()));
        assert!(cuts.check(2).is_err(), "two points need three reducers");
        assert_eq!(CutPoints::default().check(1), Ok(()));
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        // Few distinct bytes and short keys: many duplicates and prefixes.
        proptest::collection::vec(prop_oneof![Just(0u8), Just(b'a'), Just(b'b'), Just(0xff)], 0..4)
    }

    proptest! {
        #[test]
        fn partitions_are_monotone_and_in_range(
            keys in proptest::collection::vec(key(), 0..200),
            probes in proptest::collection::vec(key(), 0..50),
            reducers in 1u32..12,
        ) {
            let sample = sorted(&keys);
            let cuts = CutPoints::choose(&sample, reducers);
            prop_assert!(cuts.check(reducers).is_ok());
            prop_assert!(cuts.points().windows(2).all(|w| w[0] < w[1]), "strictly increasing");
            let mut all: Vec<&[u8]> = sample.iter().copied().chain(probes.iter().map(Vec::as_slice)).collect();
            all.sort();
            for w in all.windows(2) {
                prop_assert!(cuts.partition(w[0]) <= cuts.partition(w[1]), "k1 <= k2 but p(k1) > p(k2)");
            }
            for k in &all {
                prop_assert!(cuts.partition(k) < reducers);
            }
        }

        #[test]
        fn the_largest_partition_is_as_small_as_any_cut_allows(
            keys in proptest::collection::vec(key(), 1..40),
            reducers in 1u32..6,
        ) {
            let sample = sorted(&keys);
            let cuts = CutPoints::choose(&sample, reducers);
            let largest = *sizes(&sample, &cuts, reducers).iter().max().expect("sizes");
            prop_assert_eq!(largest, best_by_brute_force(&sample, reducers));
        }
    }
}
