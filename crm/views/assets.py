"""Files browsers ask for at fixed addresses, answered from our static files."""

from django.http import HttpResponseRedirect
from django.templatetags.static import static
from django.views.decorators.http import require_safe

FAVICON = "img/favicon.svg"


@require_safe
def favicon(request):
    """/favicon.ico, which browsers and tools request whatever the page links: a redirect to
    the icon the pages name in <link rel="icon">. Temporary, so a new icon (a new hashed
    name in production) is picked up; cached for a day meanwhile."""
    response = HttpResponseRedirect(static(FAVICON))
    response["Cache-Control"] = "public, max-age=86400"
    return response
