"""Ways out of the system to citizens and staff: SMS today."""
