"""The sources: readers of every input format, the package fetcher and the sources stage. Plain Python, usable
without Beam (a remote path loads Beam's filesystems only when it is met); imports nothing, so `import sources` is
cheap."""
