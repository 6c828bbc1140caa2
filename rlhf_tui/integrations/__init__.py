"""Writers that training code attaches to produce run directories rlhf-top reads.

Each integration lives in its own module and imports its training library there, so importing this
package needs none of them: `from rlhf_tui.integrations.trl import RunLogger` needs the `[trl]` extra.
"""
