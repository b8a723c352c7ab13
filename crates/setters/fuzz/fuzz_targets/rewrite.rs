//! Any text: the marker finder and the rewrite never panic, and when they
//! rewrite, the output re-parses, holds the new values in the marked scalars,
//! equals the input everywhere else, and a second run changes nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use tagwarden_setters::{LatestRef, PolicyImage, Setters, find_markers, update_text};

fn setters() -> Setters {
    // Tags a registry would refuse are included on purpose: the rewrite must
    // still write them safely.
    let tags = [
        "5.0.3",
        "1606364286",
        "on",
        "a: b",
        "it's",
        "q\"b\\",
        "x #y",
        "é\u{85}",
        "",
    ];
    let policies: Vec<PolicyImage> = tags
        .iter()
        .enumerate()
        .map(|(i, tag)| PolicyImage {
            no_downgrade: None,
            namespace: "ns".into(),
            name: format!("p{i}"),
            labels: BTreeMap::new(),
            latest: LatestRef {
                name: "ghcr.io/acme/app".into(),
                tag: (*tag).into(),
                digest: Some("sha256:abc".into()),
            },
        })
        .collect();
    Setters::new("ns", None, &policies)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let setters = setters();
    let scan = find_markers(text);
    let update = update_text(text, &setters);
    let (scan, update) = match (scan, update) {
        (Ok(s), Ok(u)) => (s, u),
        // Not YAML is fine; a rewrite the verify step refuses is a writer bug.
        (_, Err(tagwarden_setters::TextError::Yaml(_))) => return,
        (_, Err(e)) => panic!("{e}\n{text:?}"),
        // Without the marker text, update_text does not parse at all.
        (Err(_), Ok(u)) => {
            assert!(u.text.is_none());
            return;
        }
    };
    let mut prev = 0;
    for m in &scan.markers {
        assert!(
            m.range.start >= prev && m.range.start < m.range.end,
            "{m:?}"
        );
        assert!(text.is_char_boundary(m.range.start) && text.is_char_boundary(m.range.end));
        prev = m.range.end;
    }
    let Some(out) = update.text else {
        return;
    };
    let after = find_markers(&out).expect("rewritten text parses");
    assert_eq!(after.markers.len(), scan.markers.len(), "{out:?}");
    let (mut pi, mut po) = (0, 0);
    for (m, a) in scan.markers.iter().zip(&after.markers) {
        assert_eq!(&text[pi..m.range.start], &out[po..a.range.start], "{out:?}");
        let want = setters.lookup(&m.setter).unwrap_or(&m.value);
        assert_eq!(a.value, want, "{out:?}");
        if want == m.value {
            assert_eq!(&text[m.range.clone()], &out[a.range.clone()]);
        }
        pi = m.range.end;
        po = a.range.end;
    }
    assert_eq!(&text[pi..], &out[po..]);
    let again = update_text(&out, &setters).expect("rewritten text parses");
    assert!(again.text.is_none(), "second run changed {out:?}");
});
