//! "Did you mean" suggestions: the closest known name by edit distance.
//!
//! Contract: [`closest`] returns the candidate with the smallest optimal-string-alignment
//! distance (adjacent transpositions count 1) if it is close enough for the word's length
//! (1 edit up to 3 chars, 2 up to 8, 3 beyond); a case-insensitive exact match always wins.

/// The closest candidate to `word`, if any is close enough.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    if let Some(c) = candidates.iter().find(|c| c.eq_ignore_ascii_case(word)) {
        return Some(c);
    }
    let len = word.chars().count();
    let limit = match len {
        0..=3 => 1,
        4..=8 => 2,
        _ => 3,
    };
    candidates.iter().map(|c| (distance(&word.to_ascii_lowercase(), c), *c)).filter(|(d, _)| *d <= limit).min_by_key(|(d, _)| *d).map(|(_, c)| c)
}

/// Optimal string alignment distance between `a` and `b`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests() {
        assert_eq!(closest("tpye", &["type", "count", "keys"]), Some("type"));
        assert_eq!(closest("bach_size", &["batch_size", "path"]), Some("batch_size"));
        assert_eq!(closest("Type", &["type"]), Some("type"));
        assert_eq!(closest("zzzz", &["type", "keys"]), None);
        assert_eq!(closest("generat", &["generate", "file", "stdin"]), Some("generate"));
    }
}
