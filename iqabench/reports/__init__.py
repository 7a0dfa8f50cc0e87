"""From predictions to numbers and pages: metrics, results.json, the markdown leaderboard and its figures."""
