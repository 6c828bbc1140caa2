"""The Textual terminal UI: a thin view over the core (`rlhf_tui.core`), which never imports it."""
