"""PLAN + APPLY on the router: what it must hold, what differs, and the writes that fix it.

tables (the RouterOS menus and row type), ownership (names and the `<prefix>::` scheme),
desired (a target's rows), plan (the Plan value), planner (the pure planner), order (the
execution order: removals first, then whole policies), apply (the writes, in plan order),
client (the RouterOS REST client: a reader and a writer), jsonstream (its streamed row reader).
"""
