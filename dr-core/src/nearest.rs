//! "Did you mean": the candidates closest to a misspelt name, by edit distance
//! (Levenshtein, case-insensitive).

/// The edit distance between `a` and `b`, ignoring ASCII case.
#[must_use]
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.to_ascii_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.to_ascii_lowercase().chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Up to `n` of `candidates` at most `max` edits from `name`, closest first.
#[must_use]
pub fn nearest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max: usize,
    n: usize,
) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (distance(c, name), c))
        .filter(|(d, _)| *d <= max)
        .collect();
    scored.sort_unstable();
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_come_first_and_far_ones_not_at_all() {
        assert_eq!(distance("Deploymnet", "deployment"), 2);
        assert_eq!(
            nearest("exex", ["sql.exec", "exit", "exec"], 3, 3),
            ["exec", "exit"]
        );
        assert!(nearest("zzz", ["Deployment"], 2, 3).is_empty());
    }
}
