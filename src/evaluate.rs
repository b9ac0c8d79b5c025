//! Gathering what the decision needs — installed version, releases, remembered holds —
//! and making it. Shared by `check`, `check-and-apply` and `--dry-run`.

use anyhow::{Context, Result};

use crate::config::Config;
use crate::forge::{self, ForgeTarget};
use crate::host_id;
use crate::http::Fetcher;
use crate::http_cache::HttpCache;
use crate::installed::{self, Installed};
use crate::policy::{self, Decision, Holds, HostRollout, Overrides, Policy};
use crate::release::Release;
use crate::rollout::Rollout;
use crate::state::State;
use crate::world::World;

/// Everything one decision was made from, and the decision.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub installed: Installed,
    pub releases: Vec<Release>,
    pub decision: Decision,
}

/// The forge target the configuration describes.
pub fn forge_target(cfg: &Config) -> ForgeTarget<'_> {
    ForgeTarget {
        kind: cfg.forge,
        base_url: &cfg.forge_url,
        repo: &cfg.repo,
        token: cfg.token.as_ref(),
    }
}

/// Lists the forge's releases (through the ETag cache; `store` false leaves it as it is).
pub fn fetch_releases(cfg: &Config, world: &World, store: bool) -> Result<Vec<Release>> {
    let cache = if store {
        HttpCache::new(cfg.cache_dir.join("http"))
    } else {
        HttpCache::read_only(cfg.cache_dir.join("http"))
    };
    let fetcher = Fetcher {
        client: world.http.as_ref(),
        clock: world.clock.as_ref(),
        cache: Some(&cache),
        timeout: cfg.http_timeout,
    };
    let target = forge_target(cfg);
    let listed = forge::list_releases(&fetcher, &target, world.clock.now());
    // Whether it ended well or not, the cache keeps what this listing used, nothing more.
    cache.keep_only_used();
    listed.with_context(|| {
        // Say which of these nobody set: a default is often what is wrong.
        let note = |key: &str| {
            cfg.default_note(key)
                .map(|n| format!(" {n}"))
                .unwrap_or_default()
        };
        format!(
            "could not list the releases of {}{} on {}{}",
            cfg.repo,
            note("repo"),
            cfg.forge_url,
            note("forge_url")
        )
    })
}

/// Probes what is installed, lists releases, and decides. `store_cache` false: no file
/// is written (for `--dry-run`).
pub fn evaluate(
    cfg: &Config,
    world: &World,
    state: &State,
    overrides: &Overrides,
    store_cache: bool,
) -> Result<Evaluation> {
    let installed = installed::probe(
        world.runner.as_ref(),
        &cfg.layout(),
        &cfg.binary,
        &cfg.packages,
    );
    let releases = fetch_releases(cfg, world, store_cache)?;
    let decision = redecide(&installed, &releases, cfg, state, overrides, world)?;
    Ok(Evaluation {
        installed,
        releases,
        decision,
    })
}

/// The decision again, e.g. under the lock with freshly read state.
pub fn redecide(
    installed: &Installed,
    releases: &[Release],
    cfg: &Config,
    state: &State,
    overrides: &Overrides,
    world: &World,
) -> Result<Decision> {
    Ok(policy::decide(
        &installed.state(),
        releases,
        &host_policy(cfg, world)?,
        &holds(cfg, world, state),
        overrides,
        world.clock.now(),
    ))
}

/// The state's holds; a release held back for a too-old toolchain is let go once
/// `rustc --version` says another toolchain is there (asked only then: it is cheap, but
/// not free).
fn holds(cfg: &Config, world: &World, state: &State) -> Holds {
    if !state.waits_for_a_toolchain() {
        return state.holds();
    }
    let settings = crate::commands::run_settings(cfg, world);
    let tools = crate::build::Tools::find(&settings.build, world.path_var());
    let now = crate::build::rustc_now(&settings.build, &tools, world.runner.as_ref());
    let holds = state.holds_with_rustc(now.as_deref());
    for (v, b) in &state.backoff {
        if let (Some(then), Some(now)) = (&b.rustc, &now)
            && then != now
        {
            let then = if then.is_empty() {
                "a toolchain that could not run"
            } else {
                then.as_str()
            };
            log::debug!("{v} failed with {then}; the toolchain is {now} now: its backoff is over");
        }
    }
    holds
}

/// The configured policy with this host's place in a phased rollout (when
/// `rollout_spread` is set): the host id is read here, at run time.
pub fn host_policy(cfg: &Config, world: &World) -> Result<Policy> {
    let mut policy = cfg.policy.clone();
    if cfg.rollout_spread.is_zero() {
        return Ok(policy);
    }
    let id = host_id::resolve(
        cfg.host_id.as_deref(),
        host_id::Platform::current(),
        std::path::Path::new("/"),
        world.runner.as_ref(),
    )
    .context("finding this host's place in the rollout (rollout_spread is set)")?;
    policy.rollout = Some(HostRollout {
        rollout: Rollout {
            spread: cfg.rollout_spread,
            pinned_wave: cfg.rollout_wave,
        },
        host_id: id.value().to_owned(),
    });
    Ok(policy)
}
