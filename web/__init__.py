"""What the site's pages share beside the two apps: security headers, the site context, the admin
login throttle, the provider webhooks behind their secret and the deploy check that asks for it."""
