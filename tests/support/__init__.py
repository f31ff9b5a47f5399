"""What tests and bench scripts share: servers on free ports, throwaway databases and services,
logged-in sessions, and the consistency checks of the task graph.

It lives under tests/ because tests are its first user; bench scripts import it too (they put
the repository root on ``sys.path``). Nothing here imports Django at module level, so a bench
script can import it before it configures Django.
"""
