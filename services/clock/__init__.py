"""The clock service: schedules become ticks on clock.ticks, so time is data in the log (docs/clock.md)."""
