"""Running a suite: the schema, setting up a run, the loop, resumable training and scoring, the output folder."""
