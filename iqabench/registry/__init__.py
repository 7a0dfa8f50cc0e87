"""Finding plugins through entry points, checking options against constructors, and building objects by name."""
