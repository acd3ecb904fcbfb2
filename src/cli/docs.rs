//! Shell completions and the man page, generated from the CLI definition so they never drift from it.

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// `podkeeper completions SHELL`: the completion script. Written to memory
/// first: clap_complete panics on a write error (a closed pipe).
pub fn completions(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "podkeeper", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `podkeeper manpage`: podkeeper(1) in roff.
pub fn manpage() -> String {
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    let _ = clap_mangen::Man::new(Cli::command()).render(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_should_name_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = completions(shell);
            for sub in ["run", "check", "record", "replay", "export", "completions"] {
                assert!(text.contains(sub), "{shell}: no {sub}");
            }
            assert!(text.contains("sweep-interval"), "{shell}");
        }
    }

    #[test]
    fn the_man_page_should_be_roff_naming_the_commands() {
        let text = manpage();
        assert!(text.starts_with(".ie"), "{}", &text[..40]);
        assert!(text.contains(".TH podkeeper 1"));
        assert!(text.contains("podkeeper\\-run"), "{text}");
    }
}
