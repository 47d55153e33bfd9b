"""Harvest: CSV / JSONL sources into NEW leads on leads.new."""
