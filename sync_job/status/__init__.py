"""STATUS: the RouterPolicy objects and Events that tell users where each policy stands.

conditions (the Ready condition), reconcile (which objects and statuses change), events
(the Events a run records), writes (the API writes).
"""
