//! Unified diffs of rewritten files, for `--dry-run`.

/// Lines of context around each change, as `diff -u`.
const CONTEXT: usize = 3;

/// A unified diff from `old` to `new` (empty when equal), with `a/` and `b/`
/// prefixes so `git apply` takes it. Setters never add or remove lines, so
/// lines are compared pairwise; texts of different length get one hunk.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    if a.len() != b.len() {
        hunk(&mut out, &a, &b, 0, a.len(), 0, b.len());
        return out;
    }
    let changed: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(CONTEXT);
        let mut last = changed[i];
        // Changes closer than twice the context share a hunk.
        while i + 1 < changed.len() && changed[i + 1] <= last + 2 * CONTEXT + 1 {
            i += 1;
            last = changed[i];
        }
        let end = (last + CONTEXT + 1).min(a.len());
        hunk(&mut out, &a, &b, start, end, start, end);
        i += 1;
    }
    out
}

fn hunk(out: &mut String, a: &[&str], b: &[&str], a0: usize, a1: usize, b0: usize, b1: usize) {
    let pos = |start: usize, len: usize| if len == 0 { start } else { start + 1 };
    out.push_str(&format!(
        "@@ -{},{} +{},{} @@\n",
        pos(a0, a1 - a0),
        a1 - a0,
        pos(b0, b1 - b0),
        b1 - b0
    ));
    let same_len = a.len() == b.len();
    let (mut i, mut j) = (a0, b0);
    while i < a1 || j < b1 {
        if same_len && i < a1 && a[i] == b[j] {
            line(out, ' ', a[i]);
            i += 1;
            j += 1;
            continue;
        }
        // A run of changed lines: all old ones, then all new ones.
        let run_end = if same_len {
            (i..a1).find(|&k| a[k] == b[k]).unwrap_or(a1)
        } else {
            a1
        };
        let b_end = if same_len { run_end } else { b1 };
        for l in &a[i..run_end] {
            line(out, '-', l);
        }
        for l in &b[j..b_end] {
            line(out, '+', l);
        }
        i = run_end;
        j = b_end;
    }
}

fn line(out: &mut String, tag: char, l: &str) {
    out.push(tag);
    out.push_str(l);
    if !l.ends_with('\n') {
        out.push_str("\n\\ No newline at end of file\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_with_context_merged_when_close() {
        let old: String = (1..=20).map(|i| format!("l{i}\n")).collect();
        let new = old
            .replace("l2\n", "L2\n")
            .replace("l5\n", "L5\n")
            .replace("l18\n", "L18\n");
        let want = "--- a/f.yaml\n+++ b/f.yaml\n\
            @@ -1,8 +1,8 @@\n l1\n-l2\n+L2\n l3\n l4\n-l5\n+L5\n l6\n l7\n l8\n\
            @@ -15,6 +15,6 @@\n l15\n l16\n l17\n-l18\n+L18\n l19\n l20\n";
        assert_eq!(unified_diff("f.yaml", &old, &new), want);
    }

    #[test]
    fn missing_final_newline_is_marked() {
        let d = unified_diff("k", "a: 1\nb: 2", "a: 1\nb: 3");
        assert_eq!(
            d,
            "--- a/k\n+++ b/k\n@@ -1,2 +1,2 @@\n a: 1\n-b: 2\n\\ No newline at end of file\n+b: 3\n\\ No newline at end of file\n"
        );
        assert_eq!(unified_diff("k", "same", "same"), "");
    }

    #[test]
    fn different_line_counts_give_one_hunk() {
        assert_eq!(
            unified_diff("k", "a\n", "a\nb\n"),
            "--- a/k\n+++ b/k\n@@ -1,1 +1,2 @@\n-a\n+a\n+b\n"
        );
    }
}
