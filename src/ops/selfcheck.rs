//! The start-up self-check: settings that silently defeat an event-driven keeper, each warned about once.
