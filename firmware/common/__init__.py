"""The services the box's services share: device identity and signing, report rendering, i18n, fonts."""
