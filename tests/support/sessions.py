"""Logged-in sessions for websocket boards, which authenticate by session cookie only."""


def session_cookie_for(user):
    """Return a session key that logs ``user`` in, written straight to the session store.

    Going through the login form would cost a request and a password hash per board; a test
    or a bench run opening many boards only needs the cookie.
    """
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key
