"""Template context shared by every page."""


def csp_nonce(request):
    """``csp_nonce``: the name django-htmx's ``{% htmx_script %}`` reads, so its script tags carry
    the nonce of the page's Content-Security-Policy (django-csp sets ``request.csp_nonce``)."""
    return {"csp_nonce": getattr(request, "csp_nonce", None)}
