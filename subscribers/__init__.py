"""The people side of Herald: subscriber store, segments, import and the self-management web.

Empty until the subscribers issue lands; the package exists so the layout is the one users see.
"""
