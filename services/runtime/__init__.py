"""What every service shares: settings, config file, broker, database, the tick-driven stage runner."""
