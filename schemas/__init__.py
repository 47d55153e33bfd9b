"""Schemas: JSON Schema per event (generated from events/) and the Postgres DDL (sql/).

Shipped as package data; nothing here is code.
"""
