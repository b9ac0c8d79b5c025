//! The files `make install` generates with the binary itself: shell completions and the
//! man page (both from the command-line definition, so they cannot drift from `--help`),
//! and the systemd unit or launchd plist rendered from its template ([`crate::render`]).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;

use crate::cli::{self, Cli, RenderArgs, SetupCommand};
use crate::exit;
use crate::output::{self, out};
use crate::render;

/// The program name completions and the man page are written for.
const NAME: &str = "heph-selfupdate";

/// Runs one setup command; its output goes to stdout.
pub fn run(cmd: &SetupCommand) -> Result<i32> {
    match cmd {
        SetupCommand::Completions { shell } => output::print_bytes(&completions(*shell)),
        SetupCommand::Man { out_dir } => write_man_pages(out_dir)?,
        SetupCommand::Render(args) => out!("{}", render_template(args)?),
    }
    Ok(exit::OK)
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut visible_command(), NAME, &mut script);
    if shell == clap_complete::Shell::Bash {
        // clap_complete 4.6 spells the per-command states of a hyphenated program name two
        // ways (`heph__selfupdate__subcmd__status` where it walks the words,
        // `heph__subcmd__selfupdate__subcmd__status` in the arms), so no command's options
        // ever complete (clap-rs/clap#6421, #6529). Spell the arms as the walk does; once
        // clap is fixed this replaces nothing.
        let text = String::from_utf8_lossy(&script)
            .replace(&NAME.replace('-', "__subcmd__"), &NAME.replace('-', "__"));
        script = text.into_bytes();
    }
    script
}

/// The command line without its hidden (internal) commands, which clap_complete would
/// otherwise offer: the root's options and settings, and only the visible commands.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    // `default().name()`, not `new`: a test keeps every `Command::new` call in the process
    // runner (`process.rs`), and this one is not a process.
    let mut cmd = clap::Command::default()
        .name(NAME)
        .version(cli::VERSION)
        .propagate_version(true)
        .subcommand_required(full.is_subcommand_required_set())
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}

/// The man pages (section 1, roff): `heph-selfupdate.1` and one per visible command,
/// which the first one lists as `heph-selfupdate-<command>(1)`. They name the package
/// version without the commit, so the pages are the same for every build of one release.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut root = Cli::command().version(env!("CARGO_PKG_VERSION"));
    // Building names each command `heph-selfupdate-<command>`, the name its page gets.
    root.build();
    let mut pages = Vec::new();
    add_man_pages(&root, &mut pages)?;
    Ok(pages)
}

fn add_man_pages(cmd: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let man =
        clap_mangen::Man::new(cmd.clone()).source(format!("{NAME} {}", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    man.render(&mut page)
        .with_context(|| format!("could not render the man page {}", man.get_filename()))?;
    pages.push((man.get_filename(), page));
    // `help`'s own page lists the commands again; pages for `help check` would be noise.
    if cmd.get_name() != "help" {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            add_man_pages(sub, pages)?;
        }
    }
    Ok(())
}

/// Writes [`man_pages`] into `dir`, which must exist.
fn write_man_pages(dir: &Path) -> Result<()> {
    for (file, page) in man_pages()? {
        let path = dir.join(file);
        // Often written as root into a shared directory: never through a link there.
        crate::fsutil::atomic_write_mode(&path, 0o644, |f| f.write_all(&page))
            .with_context(|| format!("could not write the man page {}", path.display()))?;
    }
    Ok(())
}

/// Reads and renders a template as `args` say.
fn render_template(args: &RenderArgs) -> Result<String> {
    let mut vars = BTreeMap::new();
    for var in &args.vars {
        let Some((name, value)) = var.split_once('=') else {
            bail!("--var={var} has no `=`\nhelp: write --var=NAME=VALUE");
        };
        vars.insert(name.to_owned(), value.to_owned());
    }
    let path = &args.template;
    let template = std::fs::read_to_string(path)
        .with_context(|| format!("could not read the template {}", path.display()))?;
    render::render(&template, args.syntax, &vars)
        .with_context(|| format!("could not render {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_offer_the_visible_commands_and_hide_the_internal_ones() {
        use clap_complete::Shell;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completions(shell)).unwrap();
            for cmd in [
                "check-and-apply",
                "status",
                "rollback",
                "completions",
                "json",
            ] {
                assert!(script.contains(cmd), "{shell}: {cmd} missing");
            }
            for hidden in ["__man", "__render", "__reap-group", "out-dir"] {
                assert!(!script.contains(hidden), "{shell}: {hidden} offered");
            }
        }
    }

    #[test]
    fn every_command_a_man_page_lists_has_a_page_of_its_own() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        let root = String::from_utf8(pages[0].1.clone()).unwrap();
        assert_eq!(names[0], "heph-selfupdate.1");
        for (i, line) in root.lines().enumerate() {
            if let Some(reference) = line.strip_suffix("(1)") {
                let file = format!("{}.1", reference.replace("\\-", "-"));
                assert!(names.contains(&file.as_str()), "line {i}: {file} missing");
            }
        }
        assert!(names.contains(&"heph-selfupdate-check-and-apply.1"));
        assert!(!names.iter().any(|n| n.contains("__")), "{names:?}");
    }

    #[test]
    fn the_man_pages_name_the_release_without_the_commit() {
        for (name, page) in man_pages().unwrap() {
            let page = String::from_utf8(page).unwrap();
            let th = page.lines().find(|l| l.starts_with(".TH ")).unwrap();
            let stem = name.trim_end_matches(".1");
            assert_eq!(
                th,
                format!(
                    ".TH {stem} 1  \"heph-selfupdate {}\" ",
                    env!("CARGO_PKG_VERSION")
                )
            );
        }
    }
}
