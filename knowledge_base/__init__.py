"""Knowledge base and the problem / idea / project / case library."""
