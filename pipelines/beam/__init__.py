"""Beam infrastructure shared by the jobs: runner options, the buffered DoFn, memory release, output checks."""
