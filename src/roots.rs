//! Version roots as a model: a root is a version and, for built roots, the commit it was
//! built from (adopted roots have none). What the state remembers — bad versions, roots
//! proven healthy, an open switch — decides which root a rollback goes to, which kept root
//! a `--to` reuses instead of rebuilding, and which roots pruning must never remove.

use semver::Version;

use crate::layout::{Layout, Origin, Root};
use crate::state::State;
use crate::version::same_version;

/// True when the root's version is marked bad.
pub fn is_bad(root: &Root, state: &State) -> bool {
    root.version().is_some_and(|v| state.is_bad(&v.to_string()))
}

/// A root known to run healthy: proven so by a switch, or the binaries that ran before
/// heph-selfupdate took over — and not of a version marked bad.
pub fn is_healthy(root: &Root, state: &State) -> bool {
    !is_bad(root, state)
        && (state.proven.contains_key(&root.name) || root.meta.origin == Origin::Adopted)
}

/// Where `rollback` goes: the newest healthy root that holds `binary` (judged by what it
/// holds, not by the packages configured now), other than `current` and of another
/// version than `current`'s (going back means going to another version: a rebuild of the
/// current one is not a way back).
pub fn rollback_target(
    layout: &Layout,
    state: &State,
    current: Option<&str>,
    binary: &str,
) -> Option<Root> {
    rollback_candidates(layout, state, current, binary)
        .into_iter()
        .next()
}

/// Every root `rollback` may go to, newest first: healthy, holding `binary`, other than
/// `current` and of another version than `current`'s.
pub fn rollback_candidates(
    layout: &Layout,
    state: &State,
    current: Option<&str>,
    binary: &str,
) -> Vec<Root> {
    let roots = layout.roots();
    let current_version = current
        .and_then(|c| roots.iter().find(|r| r.name == c))
        .and_then(Root::version);
    roots
        .into_iter()
        .filter(|r| Some(r.name.as_str()) != current)
        .filter(|r| {
            current_version
                .as_ref()
                .is_none_or(|cv| r.version().is_none_or(|v| !same_version(&v, cv)))
        })
        .filter(|r| is_healthy(r, state) && r.holds(binary))
        .collect()
}

/// A kept root of `version` that can stand in for a build of it (see [`Root::serves`]):
/// one built from `commit` when a commit is given; otherwise the best of that version
/// (proven healthy first, then adopted, then any).
pub fn kept_root(
    layout: &Layout,
    state: &State,
    version: &Version,
    commit: Option<&str>,
    packages: &[String],
    binary: &str,
) -> Option<Root> {
    let mut same: Vec<Root> = layout
        .roots()
        .into_iter()
        .filter(|r| {
            r.version().is_some_and(|v| same_version(&v, version)) && r.serves(packages, binary)
        })
        .collect();
    if let Some(commit) = commit {
        return same
            .into_iter()
            .find(|r| r.meta.commit.as_deref() == Some(commit));
    }
    same.sort_by_key(|r| {
        (
            !state.proven.contains_key(&r.name),
            r.meta.origin != Origin::Adopted,
        )
    });
    same.into_iter().next()
}

/// Roots pruning must keep: `current`, the rollback target (the way back), the root the
/// last switch came from (unless it is bad: what ran before, even when a root of the
/// current version was proven healthy earlier), every root an open switch names, and a
/// root staged for the restart window.
pub fn protected(layout: &Layout, state: &State, binary: &str) -> Vec<String> {
    let current = layout.current();
    let mut keep: Vec<String> = current.iter().cloned().collect();
    if let Some(back) = rollback_target(layout, state, current.as_deref(), binary) {
        keep.push(back.name);
    }
    if let Some(from) = state
        .last_from
        .as_ref()
        .filter(|f| layout.find(f).is_some_and(|r| !is_bad(&r, state)))
    {
        keep.push(from.clone());
    }
    if let Some(intent) = &state.intent {
        keep.extend(intent.from.iter().cloned());
        keep.push(intent.to.clone());
    }
    if let Some(staged) = &state.staged {
        keep.push(staged.root.clone());
    }
    keep
}

/// Removes old roots (keeping `keep` in all, never a protected one, bad ones first) and
/// forgets what the state knew of removed ones. Returns the names removed.
pub fn prune(
    layout: &Layout,
    state: &mut State,
    keep: usize,
    binary: &str,
) -> anyhow::Result<Vec<String>> {
    let protect = protected(layout, state, binary);
    let protect: Vec<&str> = protect.iter().map(String::as_str).collect();
    let removed = layout.prune(keep, &protect, |r| is_bad(r, state))?;
    let left: Vec<String> = layout.roots().into_iter().map(|r| r.name).collect();
    state.forget_roots_except(&left);
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{RootMeta, write_meta};
    use time::macros::datetime;

    const T: time::OffsetDateTime = datetime!(2026-03-10 12:00 UTC);

    fn layout() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(&dir.path().join("data"), &dir.path().join("bin"));
        std::fs::create_dir_all(&l.bin_dir).unwrap();
        (dir, l)
    }

    fn make(l: &Layout, name: &str, origin: Origin, commit: Option<&str>) {
        let root = l.root(name);
        std::fs::create_dir_all(root.join("bin")).unwrap();
        for p in ["heph", "hephd"] {
            std::fs::write(root.join("bin").join(p), name).unwrap();
        }
        let version = crate::layout::root_version(name).map(|v| v.to_string());
        write_meta(
            &root,
            &RootMeta {
                version,
                commit: commit.map(String::from),
                origin,
                signed_by: None,
                bins: Some(
                    [("heph", "heph"), ("hephd", "hephd")]
                        .into_iter()
                        .map(|(p, b)| (p.to_owned(), vec![b.to_owned()]))
                        .collect(),
                ),
            },
        )
        .unwrap();
    }

    fn pkgs() -> Vec<String> {
        vec!["heph".into(), "hephd".into()]
    }

    #[test]
    fn rollback_after_an_automatic_rollback_goes_to_the_older_healthy_root() {
        let (_d, l) = layout();
        make(&l, "0.1.0", Origin::Adopted, None);
        make(&l, "0.2.0", Origin::Built, Some("c2"));
        make(&l, "0.3.0", Origin::Built, Some("c3"));
        l.set_current("0.2.0").unwrap();
        let mut state = State::default();
        state.mark_proven("0.2.0", T);
        state.mark_bad("0.3.0", T, "died at start");
        let target = rollback_target(&l, &state, Some("0.2.0"), "hephd").unwrap();
        assert_eq!(target.name, "0.1.0", "the bad 0.3.0 is skipped");
    }

    #[test]
    fn a_kept_adopted_root_is_reused_for_its_version() {
        let (_d, l) = layout();
        make(&l, "0.1.0", Origin::Adopted, None);
        make(&l, "0.2.0", Origin::Built, Some("c2"));
        let state = State::default();
        let v = Version::new(0, 1, 0);
        assert_eq!(
            kept_root(&l, &state, &v, None, &pkgs(), "hephd").map(|r| r.name),
            Some("0.1.0".to_owned())
        );
        assert!(
            kept_root(&l, &state, &v, Some("c1"), &pkgs(), "hephd").is_none(),
            "a build of a named commit needs that commit"
        );
        let missing = vec!["heph".into(), "hephd".into(), "heph-tui".into()];
        assert!(
            kept_root(&l, &state, &v, None, &missing, "hephd").is_none(),
            "a root without every package is not enough"
        );
    }

    #[test]
    fn pruning_keeps_current_and_the_way_back_and_the_intents_roots() {
        let (_d, l) = layout();
        for (n, c) in [
            ("0.1.0", "c1"),
            ("0.2.0", "c2"),
            ("0.3.0", "c3"),
            ("0.4.0", "c4"),
        ] {
            make(&l, n, Origin::Built, Some(c));
        }
        l.set_current("0.4.0").unwrap();
        let mut state = State::default();
        state.mark_proven("0.1.0", T);
        state.mark_proven("0.4.0", T);
        let removed = prune(&l, &mut state, 1, "hephd").unwrap();
        assert_eq!(removed, ["0.3.0", "0.2.0"]);
        let names: Vec<String> = l.roots().into_iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            ["0.4.0", "0.1.0"],
            "the newest other healthy root stays"
        );
    }

    #[test]
    fn a_root_of_the_current_version_is_never_the_way_back() {
        let (_d, l) = layout();
        make(&l, "0.1.0~2", Origin::Adopted, None);
        make(&l, "0.2.0", Origin::Built, Some("c2"));
        make(&l, "0.2.0~2", Origin::Built, Some("c2"));
        l.set_current("0.2.0~2").unwrap();
        let mut state = State::default();
        state.mark_proven("0.2.0", T);
        state.mark_proven("0.2.0~2", T);
        let target = rollback_target(&l, &state, Some("0.2.0~2"), "hephd").unwrap();
        assert_eq!(target.name, "0.1.0~2", "a rebuild of 0.2.0 is no way back");
        assert!(
            rollback_target(&l, &state, Some("0.2.0~2"), "hephd-next").is_none(),
            "a root without `binary` is no way back either"
        );
    }

    #[test]
    fn pruning_keeps_the_root_the_last_switch_came_from_unless_it_is_bad() {
        let (_d, l) = layout();
        make(&l, "0.1.0", Origin::Built, Some("c1"));
        make(&l, "0.2.0", Origin::Built, Some("c2"));
        make(&l, "0.3.0", Origin::Built, Some("c3"));
        l.set_current("0.3.0").unwrap();
        let mut state = State::default();
        state.mark_proven("0.2.0", T);
        state.mark_proven("0.3.0", T);
        state.last_from = Some("0.1.0".into());
        assert_eq!(protected(&l, &state, "hephd"), ["0.3.0", "0.2.0", "0.1.0"]);
        state.mark_bad("0.1.0", T, "rolled back by hand");
        assert_eq!(protected(&l, &state, "hephd"), ["0.3.0", "0.2.0"]);
        prune(&l, &mut state, 1, "hephd").unwrap();
        assert_eq!(state.last_from, None, "forgotten with its root");
    }
}
