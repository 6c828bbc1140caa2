"""The headless core: discovery, tailing, readers, run model, monitor. Never imports Textual."""
