"""Replays: a stage's input re-run through today's logic from the leads' current snapshots."""
