//! Properties of tag selection that must hold for any input.

use proptest::prelude::*;
use std::cmp::Ordering;
use tagwarden_policy::{Policy, PolicySpec, Range, parse_go_float, parse_tag};

fn version() -> impl Strategy<Value = (u64, u64, u64, Option<String>)> {
    (
        0u64..4,
        0u64..4,
        0u64..4,
        proptest::option::of("(alpha|beta|rc)(\\.[0-9])?"),
    )
}

fn render((a, b, c, pre): &(u64, u64, u64, Option<String>), v: bool) -> String {
    let p = if v { "v" } else { "" };
    match pre {
        Some(pre) => format!("{p}{a}.{b}.{c}-{pre}"),
        None => format!("{p}{a}.{b}.{c}"),
    }
}

fn tag_list() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            (version(), any::<bool>()).prop_map(|(v, p)| render(&v, p)),
            "[a-z0-9.-]{0,12}",
        ],
        1..30,
    )
}

fn spec_semver(range: &str) -> PolicySpec {
    PolicySpec {
        semver_range: Some(range.to_string()),
        ..PolicySpec::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Parsing arbitrary text never panics, and accepted tags round-trip.
    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}") {
        if let Ok(v) = parse_tag(&s) {
            let plain = s.strip_prefix('v').unwrap_or(&s);
            prop_assert!(plain.starts_with(|c: char| c.is_ascii_digit()));
            prop_assert!(plain.contains(&v.pre.to_string()));
        }
        let _ = Range::parse(&s);
        let _ = parse_go_float(&s);
        let _ = Policy::new(&PolicySpec {
            alphabetical_order: Some("asc".into()),
            filter_pattern: Some(s.clone()),
            filter_extract: Some(s.clone()),
            ..PolicySpec::default()
        });
    }

    /// The winner is a listed tag, satisfies the range, and nothing listed
    /// beats it; without equal versions the input order does not matter.
    #[test]
    fn semver_winner_is_the_maximum(tags in tag_list(), seed in any::<u64>()) {
        let range = ">=1.0.0 <3.0.0 || ^0.1.0-0";
        let policy = Policy::new(&spec_semver(range)).expect("valid");
        let r = Range::parse(range).expect("valid");
        let in_range: Vec<_> = tags.iter().filter_map(|t| parse_tag(t).ok().filter(|v| r.matches(v)).map(|v| (t, v))).collect();
        match policy.select(&tags) {
            Ok(sel) => {
                let best = parse_tag(sel.tag).expect("winner parses");
                prop_assert!(r.matches(&best));
                for (_, v) in &in_range {
                    prop_assert!(v.cmp_precedence(&best) != Ordering::Greater);
                }
                let distinct = in_range.iter().all(|(t, v)| in_range.iter().all(|(u, w)| t == u || v.cmp_precedence(w) != Ordering::Equal));
                if distinct {
                    let mut shuffled = tags.clone();
                    shuffle(&mut shuffled, seed);
                    prop_assert_eq!(policy.select(&shuffled).expect("same set").tag, sel.tag);
                }
            }
            Err(_) => prop_assert!(in_range.is_empty()),
        }
    }

    /// Alphabetical picks the bytewise extreme whatever the order.
    #[test]
    fn alphabetical_is_order_free(mut tags in prop::collection::vec("[ -~]{0,8}", 1..20), seed in any::<u64>(), desc in any::<bool>()) {
        let spec = PolicySpec { alphabetical_order: Some(if desc { "desc" } else { "asc" }.into()), ..PolicySpec::default() };
        let p = Policy::new(&spec).expect("valid");
        let want = if desc { tags.iter().min() } else { tags.iter().max() }.cloned().expect("non-empty");
        prop_assert_eq!(p.select(&tags).expect("any tags").tag, want.as_str());
        shuffle(&mut tags, seed);
        prop_assert_eq!(p.select(&tags).expect("any tags").tag, want.as_str());
    }

    /// Numerical agrees with sorting distinct numbers.
    #[test]
    fn numerical_is_the_extreme(nums in prop::collection::btree_set(-1_000_000i64..1_000_000, 1..20), seed in any::<u64>()) {
        let mut tags: Vec<String> = nums.iter().map(i64::to_string).collect();
        shuffle(&mut tags, seed);
        let spec = PolicySpec { numerical_order: Some("asc".into()), ..PolicySpec::default() };
        let p = Policy::new(&spec).expect("valid");
        let max = nums.iter().max().expect("non-empty").to_string();
        prop_assert_eq!(p.select(&tags).expect("numbers").tag, max.as_str());
    }

    /// `^X.Y.Z` (X>0) is `>=X.Y.Z <X+1.0.0`, `~X.Y.Z` is `>=X.Y.Z <X.Y+1.0`,
    /// `A - B` is `>=A <=B`, and `||` is a union.
    #[test]
    fn sugar_equals_its_expansion(a in version(), b in version(), v in version()) {
        let (x, y, z) = (a.0 + 1, a.1, a.2);
        let v = parse_tag(&render(&v, false)).expect("valid");
        let m = |r: &str| Range::parse(r).expect(r).matches(&v);
        prop_assert_eq!(m(&format!("^{x}.{y}.{z}")), m(&format!(">={x}.{y}.{z} <{}.0.0", x + 1)));
        prop_assert_eq!(m(&format!("~{x}.{y}.{z}")), m(&format!(">={x}.{y}.{z} <{x}.{}.0", y + 1)));
        let (sa, sb) = (render(&(a.0, a.1, a.2, None), false), render(&(b.0, b.1, b.2, None), false));
        prop_assert_eq!(m(&format!("{sa} - {sb}")), m(&format!(">={sa} <={sb}")));
        prop_assert_eq!(m(&format!(">{sa} || <{sb}")), m(&format!(">{sa}")) || m(&format!("<{sb}")));
    }
}

/// A deterministic Fisher-Yates shuffle, so failures reproduce from the seed.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = usize::try_from(seed >> 33).unwrap_or(0) % (i + 1);
        v.swap(i, j);
    }
}
