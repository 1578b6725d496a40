//! The table of bad inputs: each case breaks one rule, and must be rejected
//! by the CLI with a non-zero exit, a message naming the field, and nothing
//! written; the library must return the same field in its typed error.

mod support;

use ospw_matrix::{parse_host, render, Error, RenderContext};
use serde_yaml::Value;

/// A minimal valid host description; each case deep-merges a patch into it.
const BASE: &str = "\
base_domain: example.org
server_name: example.org
matrix_host: matrix.example.org
element_host: chat.example.org
";

/// (patch in YAML, the field the error must name)
const CASES: &[(&str, &str)] = &[
    // Names.
    ("base_domain: exa mple.org", "base_domain"),
    ("server_name: -bad.example.org", "server_name"),
    ("matrix_host: matrix..example.org", "matrix_host"),
    ("element_host: chat_example.org", "element_host"),
    ("server_name: other.org", "server_name"),
    ("element_host: matrix.example.org", "element_host"),
    ("matrix_host: 192.0.2.10", "matrix_host"),
    // Synapse.
    ("synapse: {listen: {tcp: {address: 10.0.0.5, port: 8008}}}", "synapse.listen.tcp.address"),
    ("synapse: {listen: {tcp: {address: not-an-ip, port: 8008}}}", "synapse.listen.tcp.address"),
    ("synapse: {listen: {tcp: {address: 127.0.0.1, port: 0}}}", "synapse.listen.tcp.port"),
    ("synapse: {listen: {unix: {path: synapse.sock}}}", "synapse.listen.unix.path"),
    ("synapse: {listen: {carrier_pigeon: {}}}", "synapse.listen"),
    ("synapse: {database: {name: Synapse-DB}}", "synapse.database.name"),
    ("synapse: {database: {user: 'root;drop'}}", "synapse.database.user"),
    ("synapse: {database: {socket_dir: run/postgresql}}", "synapse.database.socket_dir"),
    ("synapse: {database: {password: hunter2}}", "synapse.database"),
    ("synapse: {data_dir: var/lib/synapse}", "synapse.data_dir"),
    ("synapse: {media_store_path: media}", "synapse.media_store_path"),
    ("synapse: {max_upload_size: 50MB}", "synapse.max_upload_size"),
    ("synapse: {max_upload_size: lots}", "synapse.max_upload_size"),
    ("synapse: {encryption_by_default: sometimes}", "synapse.encryption_by_default"),
    ("synapse: {log_level: verbose}", "synapse.log_level"),
    ("synapse: {presence: maybe}", "synapse.presence"),
    ("synapse: {enable_registration: true}", "synapse"),
    // TURN.
    ("turn: {host: turn..example.org}", "turn.host"),
    ("turn: {realm: 'realm with spaces'}", "turn.realm"),
    ("turn: {listening_ips: [1.2.3]}", "turn.listening_ips[0]"),
    ("turn: {port: 0}", "turn.port"),
    ("turn: {port: 70000}", "turn.port"),
    ("turn: {tls: {cert_file: cert.pem, key_file: /etc/key.pem}}", "turn.tls.cert_file"),
    ("turn: {tls: {cert_file: /etc/cert.pem}}", "turn.tls"),
    ("turn: {relay_ports: 60000-50000}", "turn.relay_ports"),
    ("turn: {relay_ports: '50000'}", "turn.relay_ports"),
    ("turn: {relay_ports: 1-99999}", "turn.relay_ports"),
    ("turn: {external_ip: 1.2.3.4.5}", "turn.external_ip"),
    ("turn: {relay_ip: '::g'}", "turn.relay_ip"),
    ("turn: {user_quota: 0}", "turn.user_quota"),
    ("turn: {user_quota: 50, total_quota: 10}", "turn.user_quota"),
    ("turn: {total_quota: -1}", "turn.total_quota"),
    ("turn: {credential_lifetime: 1 hour}", "turn.credential_lifetime"),
    // Element.
    ("element: {brand: ''}", "element.brand"),
    ("element: {webroot: element}", "element.webroot"),
    ("element: {default_theme: purple}", "element.default_theme"),
    // Proxy.
    ("proxy: {acme_email: admin}", "proxy.acme_email"),
    ("proxy: {tls: selfsigned}", "proxy.tls"),
    ("proxy: {bind: [0.0.0.300]}", "proxy.bind[0]"),
    ("proxy: {admin: nowhere}", "proxy.admin"),
    // Caddy's admin endpoint has no authentication: loopback, a socket or off.
    ("proxy: {admin: ':2019'}", "proxy.admin"),
    ("proxy: {admin: '0.0.0.0:2019'}", "proxy.admin"),
    ("proxy: {admin: '[::]:2019'}", "proxy.admin"),
    ("proxy: {admin: '192.0.2.7:2019'}", "proxy.admin"),
    ("proxy: {admin: 'admin.example.org:2019'}", "proxy.admin"),
    ("proxy: {admin: '{env.CADDY_ADMIN}'}", "proxy.admin"),
    ("proxy: {admin: 'tcp4/0.0.0.0:2019'}", "proxy.admin"),
    ("proxy: {admin: 'localhost:2019-2040'}", "proxy.admin"),
    ("proxy: {admin: 'OFF'}", "proxy.admin"),
    // Values Caddy would read as something else (placeholders, {$VAR}, line breaks).
    ("element: {webroot: '/srv/{header.X-Root}'}", "element.webroot"),
    ("element: {webroot: '/srv/{$HOME}/element'}", "element.webroot"),
    ("element: {webroot: \"/srv/el\\nement\"}", "element.webroot"),
    ("synapse: {listen: {unix: {path: '/run/{query.s}/client.sock'}}}", "synapse.listen.unix.path"),
    ("synapse: {listen: {unix: {path: '/run/synapse/client.sock|0777'}}}", "synapse.listen.unix.path"),
    ("proxy: {acme_email: '{$EMAIL}@example.org'}", "proxy.acme_email"),
    ("proxy: {acme_email: '#admin@example.org'}", "proxy.acme_email"),
    ("proxy: {acme_email: 'ad min@example.org'}", "proxy.acme_email"),
    ("element: {branding: {logo_file: '/srv/{path}/logo.svg'}}", "element.branding.logo_file"),
    // Port collisions.
    ("proxy: {http_port: 8443, https_port: 8443}", "proxy.https_port"),
    ("proxy: {https_port: 8008}", "proxy.https_port"),
    ("turn: {port: 50000, relay_ports: 49152-65535}", "turn.relay_ports"),
    ("turn: {port: 3478, tls: {port: 3478, cert_file: /c.pem, key_file: /k.pem}}", "turn.tls.port"),
    ("turn: {port: 443}", "turn.port"),
    // Secrets.
    ("secrets: {dir: secrets}", "secrets.dir"),
    ("secrets: {signing_key_file: signing.key}", "secrets.signing_key_file"),
    ("secrets: {turn_shared_secret: s3cr3t}", "secrets"),
    ("synapse: {settings: {registration_shared_secret: s3cr3t}}", "synapse.settings.registration_shared_secret"),
    ("synapse: {settings: {macaroon_secret_key: s3cr3t}}", "synapse.settings.macaroon_secret_key"),
    ("turn: {settings: {static-auth-secret: s3cr3t}}", "turn.settings.static-auth-secret"),
    // Placeholders.
    ("element: {brand: CHANGE_ME}", "element.brand"),
    ("synapse: {settings: {admin_contact: 'mailto:changeme@example.org'}}", "synapse.settings.admin_contact"),
    ("proxy: {acme_email: CHANGE_ME@example.org}", "proxy.acme_email"),
    // Unknown keys.
    ("federation: true", "federation"),
    ("turn: {allow_guests: true}", "turn"),
    // Settings that would break privacy.
    ("synapse: {settings: {enable_registration: true}}", "synapse.settings.enable_registration"),
    ("synapse: {settings: {federation_domain_whitelist: [other.org]}}", "synapse.settings.federation_domain_whitelist"),
    ("synapse: {settings: {trusted_key_servers: [{server_name: matrix.org}]}}", "synapse.settings.trusted_key_servers"),
    ("synapse: {settings: {allow_guest_access: true}}", "synapse.settings.allow_guest_access"),
    ("synapse: {settings: {report_stats: true}}", "synapse.settings.report_stats"),
    ("synapse: {settings: {serve_server_wellknown: true}}", "synapse.settings.serve_server_wellknown"),
    ("synapse: {settings: {allow_public_rooms_over_federation: true}}", "synapse.settings.allow_public_rooms_over_federation"),
    ("synapse: {settings: {turn_allow_guests: true}}", "synapse.settings.turn_allow_guests"),
    (
        "synapse: {settings: {listeners: [{port: 8448, type: http, bind_addresses: ['::'], resources: [{names: [federation]}]}]}}",
        "synapse.settings.listeners",
    ),
    ("turn: {settings: {allow-loopback-peers: true}}", "turn.settings.allow-loopback-peers"),
    ("turn: {settings: {no-tcp-relay: false}}", "turn.settings.no-tcp-relay"),
    ("turn: {settings: {allowed-peer-ip: 10.0.0.0-10.255.255.255}}", "turn.settings.allowed-peer-ip"),
    ("element: {settings: {integrations_ui_url: 'https://scalar.vector.im/'}}", "element.settings.integrations_ui_url"),
    ("element: {settings: {bug_report_endpoint_url: 'https://element.io/bugreports/submit'}}", "element.settings.bug_report_endpoint_url"),
    ("element: {settings: {posthog: {project_api_key: phc_x, api_host: 'https://posthog.element.io'}}}", "element.settings.posthog"),
    ("element: {settings: {disable_custom_urls: false}}", "element.settings.disable_custom_urls"),
    ("element: {settings: {default_federate: true}}", "element.settings.default_federate"),
    ("synapse: {settings: {email: {smtp_host: mail.example.org, smtp_pass: s3cr3t}}}", "synapse.settings.email.smtp_pass"),
    ("turn: {listening_ips: [0.0.0.0], settings: {allowed-peer-ip: 0.0.0.0}}", "turn.settings.allowed-peer-ip"),
    // Element settings that send people, or their data, elsewhere (class 4).
    ("element: {settings: {default_server_name: matrix.org}}", "element.settings.default_server_name"),
    ("element: {settings: {default_hs_url: 'https://matrix-client.matrix.org'}}", "element.settings.default_hs_url"),
    ("element: {settings: {defaultIsUrl: 'https://vector.im'}}", "element.settings.defaultIsUrl"),
    ("element: {settings: {mapStyleUrl: 'https://api.maptiler.com/maps/streets/style.json'}}", "element.settings.mapStyleUrl"),
    ("element: {settings: {branding: {auth_footer_links: [{text: Blog, url: 'https://element.io/blog'}]}}}", "element.settings.branding.auth_footer_links"),
    ("element: {settings: {embedded_pages: {home_url: '//evil.example/home.html'}}}", "element.settings.embedded_pages.home_url"),
    ("element: {settings: {logout_redirect_url: 'https://chat.example.org@evil.example/'}}", "element.settings.logout_redirect_url"),
    ("element: {settings: {modules: ['https://evil.example/module.js']}}", "element.settings.modules[0]"),
    ("element: {settings: {terms_and_conditions_links: [{text: ToS, url: 'javascript:alert(1)'}]}}", "element.settings.terms_and_conditions_links[0].url"),
    ("element: {settings: {mobile_guide_toast: true}}", "element.settings.mobile_guide_toast"),
    ("element: {settings: {sentry: {dsn: 'https://key@sentry.example/1'}}}", "element.settings.sentry"),
    ("element: {setting_defaults: {custom_themes: [{name: T, fonts: {faces: [{src: [{url: 'https://fonts.example.net/f.woff2'}]}]}}]}}", "element.setting_defaults.custom_themes"),
    ("element: {setting_defaults: {UIFeature.identityServer: true}}", "element.setting_defaults.UIFeature.identityServer"),
    ("element: {settings: {setting_defaults: {urlPreviewsEnabled_e2ee: true}}}", "element.settings.setting_defaults.urlPreviewsEnabled_e2ee"),
    ("element: {settings: {features: {feature_video_rooms: 'yes'}}}", "element.settings.features.feature_video_rooms"),
    ("element: {jitsi_domain: meet.element.io}", "element.jitsi_domain"),
    ("element: {map_style_url: 'http://tiles.example.org/style.json'}", "element.map_style_url"),
    ("element: {branding: {help_url: 'javascript:alert(1)'}}", "element.branding.help_url"),
    ("element: {branding: {footer_links: [{text: Blog, url: 'https://user@evil.example/'}]}}", "element.branding.footer_links[0].url"),
    ("element: {branding: {logo_file: /etc/chat/logo.exe}}", "element.branding.logo_file"),
    // Element settings contradicting a typed field (class 8), naming both.
    ("element: {settings: {brand: Other}}", "element.brand"),
    ("element: {force_turn: true, settings: {setting_defaults: {webRtcForceTURN: false}}}", "element.force_turn"),
    ("element: {setting_defaults: {webRtcAllowPeerToPeer: false}}", "element.setting_defaults.webRtcAllowPeerToPeer"),
    ("element: {settings: {jitsi: {preferred_domain: meet.example.org}}}", "element.jitsi_domain"),
    ("element: {settings: {map_style_url: 'https://tiles.example.org/style.json'}}", "element.map_style_url"),
    ("element: {settings: {setting_defaults: {UIFeature.urlPreviews: true}}}", "synapse.url_previews"),
    ("element: {setting_defaults: {urlPreviewsEnabled: true}}", "synapse.url_previews"),
    ("element: {settings: {help_url: 'https://chat.example.org/help'}}", "element.branding.help_url"),
    ("synapse: {presence: false}\nelement: {settings: {enable_presence_by_hs_url: {'https://matrix.example.org': true}}}", "synapse.presence"),
    // Settings that would make the components disagree.
    ("synapse: {settings: {server_name: other.org}}", "synapse.settings.server_name"),
    ("synapse: {settings: {turn_shared_secret_path: /run/other/turn}}", "synapse.settings.turn_shared_secret_path"),
    ("turn: {settings: {listening-port: 3490}}", "turn.settings.listening-port"),
    (
        "element: {settings: {default_server_config: {m.homeserver: {base_url: 'https://matrix-client.matrix.org'}}}}",
        "element.settings.default_server_config.m.homeserver.base_url",
    ),
    ("element: {settings: {room_directory: {servers: [matrix.org]}}}", "element.settings.room_directory.servers"),
    // Single sign-on.
    ("sso: {providers: [{name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, id: Corp!}]}", "sso.providers[0].id"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s}, {id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s}]}", "sso.providers[1].id"),
    ("sso: {providers: [{id: corp, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, name: ''}]}", "sso.providers[0].name"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, brand: Auth Entik}]}", "sso.providers[0].brand"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, icon_file: icon.png}]}", "sso.providers[0].icon_file"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, icon_file: /srv/icons/sso.gif}]}", "sso.providers[0].icon_file"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, icon_file: 'https://cdn.example.org/sso.png'}]}", "sso.providers[0].icon_file"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, icon_file: '/srv/my icons/sso.png'}]}", "sso.providers[0].icon_file"),
    ("sso: {providers: [{id: corp, name: Corp SSO, client_id: matrix, client_secret_file: /run/s, issuer: 'http://auth.example.org/'}]}", "sso.providers[0].issuer"),
    ("sso: {providers: [{id: corp, name: Corp SSO, client_id: matrix, client_secret_file: /run/s, issuer: auth.example.org}]}", "sso.providers[0].issuer"),
    ("sso: {providers: [{id: corp, name: Corp SSO, client_id: matrix, client_secret_file: /run/s, issuer: 'https://auth.example.org/?tenant=x'}]}", "sso.providers[0].issuer"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_secret_file: /run/s, client_id: ''}]}", "sso.providers[0].client_id"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: oidc-secret}]}", "sso.providers[0].client_secret_file"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, client_secret: s3cr3t}]}", "sso.providers[0]"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix}]}", "sso.providers[0]"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, scopes: [profile, email]}]}", "sso.providers[0].scopes"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, scopes: [openid, 'e mail']}]}", "sso.providers[0].scopes[1]"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, pkce: sometimes}]}", "sso.providers[0].pkce"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, user_mapping: {localpart: '{{ user.name'}}]}", "sso.providers[0].user_mapping.localpart"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, user_mapping: {localpart: admin}}]}", "sso.providers[0].user_mapping.localpart"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, user_mapping: {display_name: '{% if user.name %}x{% endif %}'}}]}", "sso.providers[0].user_mapping.display_name"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, user_mapping: {email: '{{ user.email | shout }}'}}]}", "sso.providers[0].user_mapping.email"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, user_mapping: {localpart: '{{ user.__class__ }}'}}]}", "sso.providers[0].user_mapping.localpart"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, user_mapping: {subject_claim: 'a-b'}}]}", "sso.providers[0].user_mapping.subject_claim"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, require: [{attribute: groups}]}]}", "sso.providers[0].require[0]"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, require: [{attribute: groups, value: chat, one_of: [team]}]}]}", "sso.providers[0].require[0].one_of"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, require: [{attribute: groups, value: ''}]}]}", "sso.providers[0].require[0].value"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, auto_create: true, require: [{attribute: groups, value: chat}]}]}", "sso.providers[0].auto_create"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s, auto_create: yes-please}]}", "sso.providers[0].auto_create"),
    ("sso: {providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_secret_file: /run/s, client_id: CHANGE_ME}]}", "sso.providers[0].client_id"),
    ("sso: {password_login: false}", "sso.password_login"),
    ("synapse: {settings: {oidc_providers: [{idp_id: x, issuer: 'https://x.example/', client_id: c, client_secret_path: /s, enable_registration: true}]}}", "synapse.settings.oidc_providers"),
    ("synapse: {settings: {password_config: {enabled: false}}}", "synapse.settings.password_config"),
    ("synapse: {settings: {cas_config: {enabled: true, server_url: 'https://cas.example.org'}}}", "synapse.settings.cas_config"),
    ("synapse: {settings: {jwt_config: {enabled: true, secret_path: /run/jwt, algorithm: HS256}}}", "synapse.settings.jwt_config"),
    ("synapse: {settings: {sso: {client_whitelist: ['https://chat.example.org']}}}", "synapse.settings.sso.client_whitelist[0]"),
    // Mail.
    ("email: {smtp_host: 'mail server', from: noreply@example.org, password_reset: true}", "email.smtp_host"),
    ("email: {smtp_host: mail.example.org, from: noreply@example.org, password_reset: true, tls: 'off'}", "email.tls"),
    ("email: {smtp_host: mail.example.org, from: noreply@example.org, password_reset: true, tls: ssl}", "email.tls"),
    ("email: {smtp_host: mail.example.org, from: noreply@example.org, password_reset: true, smtp_port: 0}", "email.smtp_port"),
    ("email: {smtp_host: mail.example.org, from: noreply@example.org, password_reset: true, user: matrix}", "email.password_file"),
    ("email: {smtp_host: mail.example.org, from: noreply@example.org, password_reset: true, password_file: /run/smtp}", "email.user"),
    ("email: {smtp_host: mail.example.org, from: noreply@example.org, password_reset: true, user: matrix, password_file: smtp-password}", "email.password_file"),
    ("email: {smtp_host: mail.example.org, from: noreply@example.org, password_reset: true, user: matrix, password: hunter2}", "email"),
    ("email: {smtp_host: mail.example.org, from: noreply, password_reset: true}", "email.from"),
    ("email: {smtp_host: mail.example.org, from: \"Chat\\r\\nBcc: all@example.com <noreply@example.org>\", password_reset: true}", "email.from"),
    ("email: {smtp_host: mail.example.org, from: '100% Chat <noreply@example.org>', password_reset: true}", "email.from"),
    ("email: {smtp_host: mail.example.org, from: noreply@example.org, password_reset: true, notification_delay: 10 minutes}", "email.notification_delay"),
    ("sso: {password_login: false, providers: [{id: corp, name: Corp SSO, issuer: 'https://auth.example.org/', client_id: matrix, client_secret_file: /run/s}]}\nemail: {smtp_host: mail.example.org, from: noreply@example.org, password_reset: true}", "email.password_reset"),
    ("email: {smtp_host: mail.example.org, from: noreply@example.org}", "email"),
    ("email: {smtp_host: mail.example.org, password_reset: true}", "email"),
    ("synapse: {settings: {email: {smtp_host: mail.example.org, force_tls: true, notif_from: noreply@example.org}}}", "synapse.settings.email"),
    // Injection into turnserver.conf: what coturn reads must be what was
    // checked (a line break, a byte coturn treats specially, an option it
    // does not know, a value it reads otherwise). The over-long line is in
    // generated_cases().
    ("turn: {settings: {server-name: \"x\\nallowed-peer-ip=10.0.0.1\"}}", "turn.settings.server-name"),
    ("turn: {settings: {cipher-list: [DEFAULT, \"x\\nno-auth\"]}}", "turn.settings.cipher-list"),
    ("turn: {settings: {server-name: \"x\\rallowed-peer-ip=10.0.0.1\"}}", "turn.settings.server-name"),
    ("turn: {settings: {server-name: \"x\\0y\"}}", "turn.settings.server-name"),
    ("turn: {settings: {server-name: '\"turn.example.org\"'}}", "turn.settings.server-name"),
    ("turn: {settings: {server-name: '-turn.example.org'}}", "turn.settings.server-name"),
    ("turn: {settings: {denid-peer-ip: 10.0.0.0-10.255.255.255}}", "turn.settings.denid-peer-ip"),
    ("turn: {settings: {tlsv1: true}}", "turn.settings.tlsv1"),
    ("turn: {settings: {use-auth-secret: false}}", "turn.settings.use-auth-secret"),
    ("turn: {settings: {no-tcp-relay: nope}}", "turn.settings.no-tcp-relay"),
    ("turn: {tls: {cert_file: \"/etc/cert.pem\\nallowed-peer-ip=10.0.0.1\", key_file: /etc/key.pem}}", "turn.tls.cert_file"),
    ("turn: {tls: {cert_file: /etc/cert.pem, key_file: \"/etc/key.pem\\0\"}}", "turn.tls.key_file"),
    // Peer ranges as coturn reads them.
    ("turn: {settings: {denied-peer-ip: [\"::\"]}}", "turn.settings.denied-peer-ip"),
    ("turn: {settings: {denied-peer-ip: [10.0.0.0/8]}}", "turn.settings.denied-peer-ip"),
    // A denied-peer-ip list without the IPv4-compatible, site-local or new
    // documentation ranges (each left out of an otherwise complete list).
    ("turn: {settings: {denied-peer-ip: [0.0.0.0-0.255.255.255, 10.0.0.0-10.255.255.255, 100.64.0.0-100.127.255.255, 127.0.0.0-127.255.255.255, 169.254.0.0-169.254.255.255, 172.16.0.0-172.31.255.255, 192.0.0.0-192.0.0.255, 192.0.2.0-192.0.2.255, 192.88.99.0-192.88.99.255, 192.168.0.0-192.168.255.255, 198.18.0.0-198.19.255.255, 198.51.100.0-198.51.100.255, 203.0.113.0-203.0.113.255, 224.0.0.0-239.255.255.255, 240.0.0.0-255.255.255.254, 255.255.255.255, '::1', '64:ff9b::-64:ff9b::ffff:ffff', '64:ff9b:1::-64:ff9b:1:ffff:ffff:ffff:ffff:ffff', '::ffff:0.0.0.0-::ffff:255.255.255.255', '100::-100::ffff:ffff:ffff:ffff', '2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff', '2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', '2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']}}", "turn.settings.denied-peer-ip"),
    ("turn: {settings: {denied-peer-ip: ['::0.0.0.1-::255.255.255.255']}}", "turn.settings.denied-peer-ip"),
    ("turn: {settings: {external-ip: \"203.0.113.9/::\"}}", "turn.settings.external-ip"),
    ("turn: {external_ip: 203.0.113.9/0.0.0.0}", "turn.external_ip"),
    ("turn: {settings: {allowed-peer-ip: localhost}}", "turn.settings.allowed-peer-ip"),
    // Exemptions from denied-peer-ip must be this host's: coturn exempts
    // external-ip's private part itself, and any relay-ip is exempted.
    ("turn: {external_ip: 198.51.100.7/192.168.1.1}", "turn.external_ip"),
    ("turn: {listening_ips: [10.0.0.5], external_ip: 198.51.100.7/10.0.0.1}", "turn.external_ip"),
    ("turn: {settings: {external-ip: [198.51.100.7/10.0.0.5]}}", "turn.settings.external-ip"),
    ("turn: {settings: {relay-ip: [10.0.0.5, 192.168.1.1], allowed-peer-ip: [10.0.0.5, 192.168.1.1]}}", "turn.settings.allowed-peer-ip"),
    ("turn: {listening_ips: ['::ffff:10.0.0.5']}", "turn.listening_ips"),
    ("turn: {relay_ip: '::ffff:10.0.0.5'}", "turn.relay_ip"),
    ("turn: {external_ip: '198.51.100.7/::ffff:127.0.0.1'}", "turn.external_ip"),
    ("turn: {settings: {No-Tcp-Relay: false}}", "turn.settings.No-Tcp-Relay"),
    // Units and ranges.
    ("turn: {credential_lifetime: '86400'}", "turn.credential_lifetime"),
    ("turn: {credential_lifetime: 86400}", "turn.credential_lifetime"),
    ("turn: {credential_lifetime: 30d}", "turn.credential_lifetime"),
    ("turn: {credential_lifetime: 10s}", "turn.credential_lifetime"),
    ("turn: {total_quota: 0}", "turn.total_quota"),
    ("turn: {user_quota: 2000000, total_quota: 3000000}", "turn.user_quota"),
    ("turn: {relay_ports: 50000-50000}", "turn.relay_ports"),
    ("turn: {settings: {stale-nonce: 10m}}", "turn.settings.stale-nonce"),
    ("turn: {settings: {max-bps: 1M}}", "turn.settings.max-bps"),
    // Settings contradicting a typed field.
    ("turn: {settings: {realm: other.example.org}}", "turn.settings.realm"),
    ("turn: {settings: {user-quota: 0}}", "turn.settings.user-quota"),
    ("turn: {settings: {total-quota: 5}}", "turn.settings.total-quota"),
    ("turn: {settings: {no-tls: false}}", "turn.settings.no-tls"),
    ("turn: {tls: {cert_file: /c.pem, key_file: /k.pem}, settings: {cert: /other.pem}}", "turn.settings.cert"),
    ("turn: {listening_ips: [10.0.0.5], settings: {listening-ip: 10.0.0.6}}", "turn.settings.listening-ip"),
    ("turn: {relay_ip: 10.0.0.5, settings: {relay-ip: 10.0.0.7}}", "turn.settings.relay-ip"),
    ("turn: {settings: {max-port: 60000}}", "turn.settings.max-port"),
    // Ports other programs hold: Caddy's HTTP/3 (UDP) and admin endpoint.
    ("turn: {relay_ports: 400-500}", "turn.relay_ports"),
    ("synapse: {listen: {tcp: {address: 127.0.0.1, port: 2019}}}", "synapse.listen.tcp.port"),
    // Values YAML 1.1 (Synapse's reader) takes for something else (more
    // of this class, which needs the raw text, in RAW_CASES).
    ("synapse: {settings: {enable_media_repo: 'off'}}", "synapse.settings.enable_media_repo"),
    ("synapse: {settings: {some_module: {mode: '0660'}}}", "synapse.settings.some_module.mode"),
    ("synapse: {settings: {some_module: {delay: '1:30'}}}", "synapse.settings.some_module.delay"),
    // Outbound requests into private networks.
    ("synapse: {settings: {ip_range_whitelist: ['127.0.0.1']}}", "synapse.settings.ip_range_whitelist[0]"),
    ("synapse: {settings: {ip_range_whitelist: ['93.184.216.0/24', '0.0.0.0/0']}}", "synapse.settings.ip_range_whitelist[1]"),
    ("synapse: {settings: {ip_range_whitelist: ['::/0']}}", "synapse.settings.ip_range_whitelist[0]"),
    ("synapse: {settings: {ip_range_whitelist: ['::ffff:0:0/96']}}", "synapse.settings.ip_range_whitelist[0]"),
    ("synapse: {settings: {ip_range_whitelist: ['169.254.169.254']}}", "synapse.settings.ip_range_whitelist[0]"),
    ("synapse: {settings: {ip_range_whitelist: ['100.64.0.0/10']}}", "synapse.settings.ip_range_whitelist[0]"),
    ("synapse: {settings: {ip_range_whitelist: ['fd00::/8']}}", "synapse.settings.ip_range_whitelist[0]"),
    ("synapse: {settings: {ip_range_whitelist: ['127.1']}}", "synapse.settings.ip_range_whitelist[0]"),
    ("synapse: {url_previews: true, settings: {url_preview_ip_range_whitelist: ['192.168.0.0/16']}}", "synapse.settings.url_preview_ip_range_whitelist[0]"),
    ("synapse: {settings: {url_preview_ip_range_whitelist: ['10.0.0.0/8']}}", "synapse.settings.url_preview_ip_range_whitelist[0]"),
    ("synapse: {settings: {ip_range_blacklist: []}}", "synapse.settings.ip_range_blacklist"),
    ("synapse: {settings: {ip_range_blacklist: ['10.0.0.0/8']}}", "synapse.settings.ip_range_blacklist"),
    ("synapse: {settings: {federation_ip_range_blacklist: []}}", "synapse.settings.federation_ip_range_blacklist"),
    ("synapse: {url_previews: true, settings: {url_preview_ip_range_blacklist: ['127.0.0.0/8']}}", "synapse.settings.url_preview_ip_range_blacklist"),
    ("synapse: {settings: {url_preview_enabled: true}}", "synapse.url_previews"),
    // Secrets, by the key's name or the value's shape, in every component.
    (
        "synapse: {settings: {media_storage_providers: [{module: s3_storage_provider.S3StorageProviderBackend, config: {bucket: media, secret_access_key: x}}]}}",
        "synapse.settings.media_storage_providers[0].config.secret_access_key",
    ),
    ("synapse: {settings: {oidc_providers: [{idp_id: sso, client_secret: s3cr3t}]}}", "synapse.settings.oidc_providers[0].client_secret"),
    ("synapse: {settings: {modules: [{module: bot.Module, config: {api_token: 123456}}]}}", "synapse.settings.modules[0].config.api_token"),
    ("synapse: {settings: {redis: {enabled: true, password: hunter2}}}", "synapse.settings.redis.password"),
    (
        "synapse: {settings: {admin_notes: 'ed25519 a_AbCd nJ3aZkS0kD2fFq9Y0rC1mV6oQ8yXhT4uWbE7pLs5gIw'}}",
        "synapse.settings.admin_notes",
    ),
    ("synapse: {settings: {modules: [{module: m.M, config: {hook: 'https://bot:hunter2@example.com/x'}}]}}", "synapse.settings.modules[0].config.hook"),
    ("turn: {settings: {pkey-pwd: hunter2}}", "turn.settings.pkey-pwd"),
    ("turn: {settings: {redis-statsdb: 'ip=127.0.0.1 dbname=0 password=hunter2'}}", "turn.settings.redis-statsdb"),
    ("element: {settings: {my_service: {api_key: abc}}}", "element.settings.my_service.api_key"),
    ("element: {setting_defaults: {some_token: abc}}", "element.setting_defaults.some_token"),
    ("secrets: {signing_key_file: 'ed25519 a_AbCd nJ3aZkS0kD2fFq9Y0rC1mV6oQ8yXhT4uWbE7pLs5gIw'}", "secrets.signing_key_file"),
    // Secret names run together, acronyms, lists and collections of
    // secrets, HTTP Authorization values, webhook URLs.
    ("synapse: {settings: {modules: [{module: m.M, config: {api_tokens: [abc123]}}]}}", "synapse.settings.modules[0].config.api_tokens[0]"),
    ("synapse: {settings: {modules: [{module: m.M, config: {APIToken: abc123}}]}}", "synapse.settings.modules[0].config.APIToken"),
    ("synapse: {settings: {modules: [{module: m.M, config: {clientsecret: abc123}}]}}", "synapse.settings.modules[0].config.clientsecret"),
    ("synapse: {settings: {modules: [{module: m.M, config: {dbPassword: abc123}}]}}", "synapse.settings.modules[0].config.dbPassword"),
    ("synapse: {settings: {modules: [{module: m.M, config: {smtp_pw: abc123}}]}}", "synapse.settings.modules[0].config.smtp_pw"),
    ("synapse: {settings: {modules: [{module: m.M, config: {passwords: {alice: abc123}}}]}}", "synapse.settings.modules[0].config.passwords.alice"),
    ("synapse: {settings: {modules: [{module: m.M, config: {headers: {X-Auth: 'Bearer abc123def'}}}]}}", "synapse.settings.modules[0].config.headers.X-Auth"),
    (
        "synapse: {settings: {modules: [{module: m.M, config: {notify: 'https://hooks.slack.com/services/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'}}]}}",
        "synapse.settings.modules[0].config.notify",
    ),
    ("element: {settings: {integrations: {apiKey: abc123}}}", "element.settings.integrations.apiKey"),
    ("element: {setting_defaults: {myTokens: [abc]}}", "element.setting_defaults.myTokens[0]"),
    // Paths that would damage the host.
    ("synapse: {data_dir: /var/lib}", "synapse.data_dir"),
    ("synapse: {data_dir: /var/lib/}", "synapse.data_dir"),
    ("synapse: {media_store_path: '/var//lib/.'}", "synapse.media_store_path"),
    ("element: {webroot: /}", "element.webroot"),
    ("secrets: {dir: /etc}", "secrets.dir"),
    ("secrets: {dir: /home}", "secrets.dir"),
    ("secrets: {signing_key_file: /nix/store/0abc-signing.key}", "secrets.signing_key_file"),
    ("turn: {tls: {cert_file: /etc/ssl/turn.pem, key_file: /nix/store/0abc-turn.key}}", "turn.tls.key_file"),
    ("synapse: {data_dir: /var/lib/ospw-matrix}", "synapse.data_dir"),
    ("element: {webroot: /var/lib/ospw-matrix/secrets}", "element.webroot"),
    ("synapse: {data_dir: /srv/matrix/../synapse}", "synapse.data_dir"),
    // Paths in free-form settings: a managed secret handed to another
    // server, the process environment, a secret in the Nix store, `..`.
    (
        "synapse: {settings: {redis: {enabled: true, host: redis.example.net, password_path: /var/lib/ospw-matrix/secrets/signing_key}}}",
        "synapse.settings.redis.password_path",
    ),
    (
        "synapse: {settings: {oidc_providers: [{idp_id: sso, issuer: 'https://id.example.net/', client_id: m, client_secret_path: /var/lib/ospw-matrix/secrets/macaroon_secret_key}]}}",
        "synapse.settings.oidc_providers[0].client_secret_path",
    ),
    ("secrets: {form_secret_file: /run/agenix/form}\nsynapse: {settings: {recaptcha_private_key_path: /run/agenix/form}}", "synapse.settings.recaptcha_private_key_path"),
    ("synapse: {settings: {recaptcha_private_key_path: /proc/self/environ}}", "synapse.settings.recaptcha_private_key_path"),
    ("synapse: {settings: {app_service_config_files: [/etc/bridge.yaml, /proc/1/environ]}}", "synapse.settings.app_service_config_files[1]"),
    ("synapse: {settings: {worker_replication_secret_path: /nix/store/0abc-replication-secret}}", "synapse.settings.worker_replication_secret_path"),
    ("synapse: {settings: {email: {template_dir: ../secrets}}}", "synapse.settings.email.template_dir"),
    ("synapse: {settings: {oembed: {additional_providers: ['file:///var/lib/ospw-matrix/secrets/form_secret']}}}", "synapse.settings.oembed.additional_providers[0]"),
    (
        "synapse: {settings: {media_storage_providers: [{module: file_system, store_local: true, config: {directory: /var/lib/ospw-matrix/secrets/media}}]}}",
        "synapse.settings.media_storage_providers[0].config.directory",
    ),
    ("turn: {settings: {dh-file: /sys/kernel/notes}}", "turn.settings.dh-file"),
    // Secret files of sign-in and mail are secrets like the others: not
    // in kernel file systems or the store, and never another secret's file.
    (
        "sso: {providers: [{id: idp, name: IdP, issuer: 'https://id.example.net/', client_id: m, client_secret_file: /var/lib/ospw-matrix/secrets/signing_key}]}",
        "sso.providers[0].client_secret_file",
    ),
    (
        "sso: {providers: [{id: idp, name: IdP, issuer: 'https://id.example.net/', client_id: m, client_secret_file: /proc/self/environ}]}",
        "sso.providers[0].client_secret_file",
    ),
    ("secrets: {form_secret_file: /run/agenix/shared, macaroon_secret_key_file: /run/agenix/shared}", "secrets.form_secret_file"),
    // Units and ranges of Synapse values.
    ("synapse: {max_upload_size: 101G}", "synapse.max_upload_size"),
    ("synapse: {max_upload_size: 2T}", "synapse.max_upload_size"),
    ("synapse: {settings: {session_lifetime: 86400}}", "synapse.settings.session_lifetime"),
    ("synapse: {settings: {user_ips_max_age: '2592000'}}", "synapse.settings.user_ips_max_age"),
    ("synapse: {settings: {redaction_retention_period: 500ms}}", "synapse.settings.redaction_retention_period"),
    ("synapse: {settings: {retention: {enabled: true, purge_jobs: [{interval: 3600000}]}}}", "synapse.settings.retention.purge_jobs[0].interval"),
    ("synapse: {settings: {delete_stale_devices_after: 200y}}", "synapse.settings.delete_stale_devices_after"),
    ("synapse: {settings: {presence: {enabled: true, idle_timeout: 300000}}}", "synapse.settings.presence.idle_timeout"),
    // Settings that contradict a typed field (each naming both).
    ("synapse: {settings: {encryption_enabled_by_default_for_room_type: invite}}", "synapse.encryption_by_default"),
    ("synapse: {settings: {max_upload_size: 1G}}", "synapse.max_upload_size"),
    ("synapse: {settings: {presence: {enabled: false}}}", "synapse.presence"),
    ("synapse: {settings: {use_presence: false, presence: {}}}", "synapse.presence"),
    ("synapse: {settings: {log_config: /etc/synapse/log.yaml}}", "synapse.log_level"),
    ("synapse: {settings: {web_client_location: 'https://app.element.io'}}", "element_host"),
    ("synapse: {settings: {turn_user_lifetime: 1d}}", "turn.credential_lifetime"),
    // Privacy defaults a settings key relaxes, as Synapse reads it (a
    // top-level key replaces the rendered section whole).
    ("synapse: {settings: {push: {enabled: true}}}", "synapse.settings.push"),
    ("synapse: {settings: {push: {include_content: true}}}", "synapse.settings.push"),
    ("synapse: {settings: {email: {smtp_host: mail.example.org, redact_content: false}}}", "synapse.settings.email"),
    ("synapse: {settings: {enable_3pid_lookup: true}}", "synapse.settings.enable_3pid_lookup"),
    ("synapse: {settings: {require_auth_for_profile_requests: null}}", "synapse.settings.require_auth_for_profile_requests"),
    ("synapse: {settings: {limit_profile_requests_to_users_who_share_rooms: false}}", "synapse.settings.limit_profile_requests_to_users_who_share_rooms"),
    // Metrics: loopback only, on ports of their own.
    ("metrics: {enable: yes-please}", "metrics.enable"),
    ("metrics: {address: 0.0.0.0}", "metrics"),
    ("metrics: {enable: true, synapse_port: 0}", "metrics.synapse_port"),
    ("metrics: {enable: true, coturn_port: 8008}", "metrics.coturn_port"),
    ("metrics: {enable: true, caddy_port: 443}", "metrics.caddy_port"),
    ("metrics: {enable: true, synapse_port: 3478}", "metrics.synapse_port"),
    ("turn: {settings: {prometheus: true}}", "turn.settings.prometheus"),
    ("turn: {settings: {prometheus: 'off', prometheus-address: 127.0.0.1.nip.io}}", "turn.settings.prometheus-address"),
    ("{metrics: {enable: true}, turn: {settings: {prometheus-address: 0.0.0.0}}}", "turn.settings.prometheus-address"),
    ("turn: {settings: {prometheus-tls: true, prometheus-address: '::'}}", "turn.settings.prometheus-address"),
    ("{metrics: {enable: true}, turn: {settings: {prometheus-port: 9999}}}", "turn.settings.prometheus-port"),
];

/// Whole documents (the table above re-serialises its patches, which
/// would lose merge keys, tags and duplicates): (file name, text, field).
/// The file name decides JSON or YAML.
const RAW_CASES: &[(&str, &str, &str)] = &[
    // A merge key Synapse's PyYAML would apply.
    (
        "merge.yaml",
        "synapse:\n  settings:\n    <<: {ip_range_whitelist: ['127.0.0.1/32']}\n",
        "synapse.settings.<<",
    ),
    (
        "merge-alias.yaml",
        "synapse:\n  settings: &s {report_stats: false}\nelement:\n  settings:\n    <<: *s\n",
        "element.settings.<<",
    ),
    (
        "merge-quoted.yaml",
        "synapse:\n  settings:\n    '<<': {enable_registration: true}\n",
        "synapse.settings.<<",
    ),
    // Duplicate keys.
    (
        "duplicate.yaml",
        "synapse:\n  settings:\n    enable_registration: true\n    enable_registration: false\n",
        "synapse.settings.enable_registration",
    ),
    (
        "duplicate-nested.yaml",
        "turn:\n  settings:\n    stale-nonce: 600\n    stale-nonce: 0\n",
        "turn.settings.stale-nonce",
    ),
    (
        "duplicate.json",
        r#"{"synapse": {"settings": {"report_stats": true, "report_stats": false}}}"#,
        "synapse.settings.report_stats",
    ),
    // Tags.
    (
        "python-tag.yaml",
        "synapse:\n  settings:\n    x: !!python/object/apply:os.system [id]\n",
        "synapse.settings.x",
    ),
    (
        "custom-tag.yaml",
        "element:\n  settings:\n    brand_secret: !secret x\n",
        "element.settings.brand_secret",
    ),
    (
        "str-tag.yaml",
        "synapse:\n  settings:\n    enable_metrics: !!str true\n",
        "synapse.settings.enable_metrics",
    ),
    // Keys that are not strings, numbers that are not finite.
    (
        "int-key.yaml",
        "synapse:\n  settings:\n    1: x\n",
        "synapse.settings",
    ),
    (
        "inf.yaml",
        "synapse:\n  settings:\n    rc_message: {per_second: .inf}\n",
        "synapse.settings.rc_message.per_second",
    ),
    // JSON is read as JSON: its errors have JSON's paths and lines.
    ("type.json", r#"{"turn": {"port": "3478x"}}"#, "turn.port"),
    (
        "unknown.json",
        r#"{"synapse": {"federation": true}}"#,
        "synapse",
    ),
    ("float.json", r#"{"turn": {"port": 3.478e3}}"#, "turn.port"),
    (
        "merge.json",
        r#"{"synapse": {"settings": {"<<": {"ip_range_whitelist": ["127.0.0.1"]}}}}"#,
        "synapse.settings.<<",
    ),
    (
        "no-extension",
        "{\"element\": {\"brand\": 7}}",
        "element.brand",
    ),
];

/// Valid whole documents that the rules above must not refuse (besides
/// GOOD_CASES): (file name, text appended to BASE, or a whole JSON document).
const GOOD_DOCUMENTS: &[(&str, &str)] = &[
    // Python's json.dump escapes an emoji as a surrogate pair.
    (
        "python.json",
        r#"{"base_domain": "example.org", "server_name": "example.org", "matrix_host": "matrix.example.org", "element_host": "chat.example.org", "element": {"brand": "Chat \ud83d\ude00"}}"#,
    ),
    // Anchors and aliases mean the same to every reader.
    (
        "anchors.yaml",
        "synapse:\n  settings:\n    auto_join_rooms: &rooms ['#general:example.org']\n    room_directory_extra: *rooms\n",
    ),
    ("emoji.yaml", "element:\n  brand: Chat 😀\n"),
    ("bang.yaml", "element:\n  brand: Hello!\n  settings:\n    motd: 'Welcome! #1'\n"),
    (
        "restated.yaml",
        "synapse:\n  settings:\n    encryption_enabled_by_default_for_room_type: all\n    max_upload_size: 50M\n    presence: {enabled: true, include_offline_users_on_sync: false}\n    url_preview_enabled: false\n    turn_user_lifetime: 1h\n",
    ),
    (
        "durations.yaml",
        "synapse:\n  settings:\n    session_lifetime: 24h\n    key_refresh_interval: 1d\n    redaction_retention_period: null\n    retention: {enabled: true, purge_jobs: [{interval: 12h}]}\n",
    ),
    (
        "ranges.yaml",
        "synapse:\n  url_previews: true\n  settings:\n    ip_range_whitelist: ['93.184.216.0/24', '2606:2800:220:1::/64']\n    url_preview_ip_range_whitelist: ['8.8.8.8']\n",
    ),
    (
        "file-forms.yaml",
        "synapse:\n  settings:\n    registration_requires_token: false\n    refresh_token_lifetime: 1h\n    recaptcha_public_key: 6LdAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n    default_room_version: '10'\n",
    ),
    (
        "paths.yaml",
        "synapse:\n  data_dir: /var/lib/synapse/\n  media_store_path: /var/lib/synapse/media\nelement:\n  webroot: /nix/store/0abcd-element-web-1.12.7\nsecrets:\n  signing_key_file: /run/agenix/signing-key\n  form_secret_file: /var/lib/ospw-matrix/secrets/form\n",
    ),
    ("sizes.yaml", "synapse:\n  max_upload_size: 100G\n"),
    // `off` is a documented value of this option (Synapse reads it both ways).
    (
        "encryption-off.yaml",
        "synapse:\n  encryption_by_default: 'off'\n  settings:\n    encryption_enabled_by_default_for_room_type: 'off'\n",
    ),
];

/// Cases too long to write out: (patch in YAML, the field the error must name).
fn generated_cases() -> Vec<(String, &'static str)> {
    // A value that fills coturn's 1023-byte line buffer exactly, so that
    // coturn reads what follows as an option of its own.
    let filler = "a".repeat(1023 - "server-name=".len());
    vec![
        (
            format!("turn: {{settings: {{server-name: '{filler}allowed-peer-ip=10.0.0.0-10.255.255.255'}}}}"),
            "turn.settings.server-name",
        ),
        (
            format!("turn: {{settings: {{cipher-list: ['{filler}no-auth']}}}}"),
            "turn.settings.cipher-list",
        ),
    ]
}

/// Every case: the table and the generated ones.
fn all_cases() -> Vec<(String, &'static str)> {
    CASES
        .iter()
        .map(|(patch, field)| ((*patch).to_owned(), *field))
        .chain(generated_cases())
        .collect()
}

/// Patches a fix could wrongly refuse: each must render.
const GOOD_CASES: &[&str] = &[
    // Single sign-on and mail: an authentik client ID (40 random
    // characters, public by definition), a provider on a test host's
    // loopback, a loopback relay without TLS.
    "sso: {providers: [{id: authentik, name: SSO, issuer: 'https://auth.example.org/application/o/matrix/', \
     client_id: FSCuR9e4hQmvTnL0Zx2Ks7bYpWdA1oJqE3gHi5uV, client_secret_file: /run/secrets/oidc, \
     require: [{attribute: groups, one_of: [chat, staff]}]}]}",
    "sso: {providers: [{id: local, name: Test, issuer: 'http://127.0.0.1:9000/', client_id: c, client_secret_file: /s, auto_create: true}]}",
    "email: {smtp_host: localhost, tls: 'off', from: 'Chat <noreply@example.org>', notifications: true}",
    // Element: this server's own pages, hostless URLs, text with URLs in it.
    "element: {settings: {embedded_pages: {home_url: 'https://chat.example.org/home.html'}}}",
    "element: {settings: {branding: {welcome_background_url: ['themes/bg.jpg', 'data:image/png;base64,AAAA']}}}",
    "element: {settings: {report_event: {admin_message_md: 'Rules: https://example.net/rules'}}}",
    "element: {settings: {bug_report_endpoint_url: local}}",
    "element: {settings: {sso_redirect_options: {immediate: false}, features: {feature_pinning: true}}}",
    "element: {brand: 'Chat: the place', settings: {brand: 'Chat: the place'}}",
    "element: {force_turn: true, setting_defaults: {webRtcForceTURN: true}}",
    "element: {map_style_url: 'https://tiles.example.org/style.json', jitsi_domain: meet.example.org}",
    "element: {branding: {welcome_text: \"Welcome!\\n\\nIt's ours & <b>private</b>.\", logo_file: /etc/chat/logo-1.svg, \
     footer_links: [{text: Rules, url: 'https://example.org/rules'}], help_url: 'https://wiki.example.org/help', \
     desktop_download_url: 'https://example.org/apps'}}",
    "synapse: {url_previews: true}\nelement: {setting_defaults: {urlPreviewsEnabled: true, UIFeature.urlPreviews: true}}",
    // Caddy: odd but plain paths and addresses.
    "element: {webroot: \"/srv/element web/it's #1\"}",
    "synapse: {listen: {unix: {path: '/run/synapse sockets/client.sock'}}}",
    "proxy: {acme_email: \"o'brien+chat@example.org\"}",
    "proxy: {admin: '[::1]:2019'}",
    "proxy: {admin: 'unix//run/caddy/admin.sock'}",
    "proxy: {admin: '127.0.0.2:2100'}",
    // TURN: values near the units, ranges and contradiction rules.
    "turn: {credential_lifetime: 1d}",
    "turn: {credential_lifetime: 7d}",
    "turn: {credential_lifetime: 60s}",
    "turn: {credential_lifetime: 90m}",
    "turn: {relay_ports: 50000-50001}",
    "turn: {user_quota: 1, total_quota: 1}",
    "turn: {settings: {user-quota: 12, total-quota: 1200, realm: matrix.example.org}}",
    "turn: {settings: {listening-port: 3478, no-tls: true}}",
    "turn: {settings: {server-name: turn.example.org, stale-nonce: 600, mobility: true}}",
    "turn: {settings: {fingerprint: 'off', no-stdout-log: 'yes'}}",
    "turn: {settings: {cipher-list: 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-GCM-SHA384'}}",
    "turn: {settings: {relay-ip: 198.51.100.7}}",
    "turn: {external_ip: 198.51.100.7/10.0.0.5, listening_ips: [10.0.0.5]}",
    "turn: {external_ip: 198.51.100.7/10.0.0.5, relay_ip: 10.0.0.5}",
    "turn: {external_ip: 198.51.100.7}",
    "turn: {settings: {relay-ip: [10.0.0.5, 10.0.0.6]}}",
    "turn: {listening_ips: ['10.0.0.5', '2001:db8::5']}",
    "turn: {tls: {cert_file: /etc/ssl/turn cert.pem, key_file: /etc/ssl/turn-key.pem}}",
    // Paths in settings that are fine: templates in the store, a secret
    // of its own outside it, a log written nowhere, a restated secret path.
    "synapse: {settings: {templates: {custom_template_directory: /nix/store/0abc-templates}, oembed: {additional_providers: [/etc/ospw-matrix/oembed.json]}}}",
    "synapse: {settings: {modules: [{module: bot.Module, config: {api_token_path: /run/agenix/bot-token, data_dir: /var/lib/bot}}]}}",
    "synapse: {settings: {signing_key_path: /var/lib/ospw-matrix/secrets/signing_key}}",
    "turn: {settings: {log-file: /dev/null}}",
    // Privacy defaults restated, or kept while other keys of the section change.
    "synapse: {settings: {push: {include_content: false, group_unread_count_by_room: false}, enable_3pid_lookup: false}}",
];

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Mapping(b), Value::Mapping(p)) => {
            for (k, v) in p {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_mapping() && v.is_mapping() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, p) => *b = p,
    }
}

fn case_yaml(patch: &str) -> String {
    let mut base: Value = serde_yaml::from_str(BASE).expect("base parses");
    let patch: Value = serde_yaml::from_str(patch).expect("patch parses");
    merge(&mut base, patch);
    serde_yaml::to_string(&base).expect("serialise case")
}

/// The field paths the library reports for `yaml`, or `None` if it is valid.
fn library_errors(yaml: &str) -> Option<Vec<String>> {
    let ctx = RenderContext {
        output_dir: "/etc/ospw-matrix".into(),
    };
    match parse_host(yaml, "case") {
        Err(Error::Parse { path, message, .. }) => Some(vec![format!("{path}: {message}")]),
        Err(other) => Some(vec![other.to_string()]),
        Ok(host) => match render(&host, &ctx) {
            Ok(_) => None,
            Err(errs) => Some(errs.errors.iter().map(|e| e.to_string()).collect()),
        },
    }
}

#[test]
fn at_least_forty_cases() {
    assert!(CASES.len() >= 40, "only {} cases", CASES.len());
}

#[test]
fn base_is_valid() {
    assert_eq!(library_errors(&case_yaml("{}")), None);
}

#[test]
fn good_cases_render() {
    let failures: Vec<String> = GOOD_CASES
        .iter()
        .filter_map(|patch| {
            library_errors(&case_yaml(patch)).map(|errors| format!("{patch}: {errors:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "refused:\n{}", failures.join("\n"));
}

#[test]
fn library_rejects_each_case_naming_its_field() {
    let mut failures = Vec::new();
    let cases = all_cases();
    for (patch, field) in &cases {
        let yaml = case_yaml(patch);
        match library_errors(&yaml) {
            None => failures.push(format!("accepted: {patch}")),
            Some(errors) => {
                if !errors.iter().any(|e| e.contains(field)) {
                    failures.push(format!("{patch}: no error names {field}: {errors:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn cli_rejects_each_case_and_writes_nothing() {
    let tmp = support::TempDir::new("bad-inputs");
    let mut failures = Vec::new();
    for (i, (patch, field)) in all_cases().iter().enumerate() {
        let config = tmp.path().join(format!("case-{i}.yaml"));
        std::fs::write(&config, case_yaml(patch)).expect("write case");
        let out = tmp.path().join(format!("out-{i}"));
        let output = support::render_to(Some(&config), &out);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            failures.push(format!("exit 0 for {patch}"));
        } else if output.status.code() != Some(1) {
            failures.push(format!(
                "{patch}: exit {:?} (a panic?): {stderr}",
                output.status.code()
            ));
        }
        if !stderr.contains(field) {
            failures.push(format!("{patch}: stderr does not name {field}: {stderr}"));
        }
        if out.exists() {
            failures.push(format!("{patch}: {} was written", out.display()));
        }
        let check = support::run(&["check", "--config", &config.display().to_string()]);
        if check.status.success() {
            failures.push(format!("check accepted {patch}"));
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("list temp dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("case-"))
        .collect();
    if !leftovers.is_empty() {
        failures.push(format!("staging left behind: {leftovers:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_errors_are_reported_in_one_pass() {
    let yaml = case_yaml(
        "{base_domain: 'exa mple.org', turn: {relay_ports: 60000-50000, user_quota: 0}, \
          element: {brand: '', settings: {posthog: {project_api_key: x}}}, \
          synapse: {settings: {enable_registration: true}}}",
    );
    let errors = library_errors(&yaml).expect("rejected");
    for field in [
        "base_domain",
        "turn.relay_ports",
        "turn.user_quota",
        "element.brand",
        "element.settings.posthog",
        "synapse.settings.enable_registration",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(field)),
            "{field} missing from {errors:?}"
        );
    }
    assert!(
        errors.iter().any(|e| e
            == "turn.relay_ports: 60000-50000 is empty: the first port must be below the last"),
        "{errors:?}"
    );
    let mut paths: Vec<&str> = errors.iter().filter_map(|e| e.split(": ").next()).collect();
    let total = paths.len();
    paths.dedup();
    assert_eq!(paths.len(), total, "an error is reported twice: {errors:?}");
}

#[test]
fn every_unknown_key_and_type_error_is_reported_in_one_run() {
    let tmp = support::TempDir::new("bad-inputs-parse");
    let config = tmp.path().join("host.yaml");
    std::fs::write(
        &config,
        case_yaml("{turn: {port: 70000, allow_guests: true}, synapse: {presence: maybe}, federation: true}"),
    )
    .expect("write case");
    let out = tmp.path().join("out");
    let output = support::render_to(Some(&config), &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for field in [
        "turn.port",
        "turn.allow_guests",
        "synapse.presence",
        "federation",
    ] {
        assert!(stderr.contains(field), "{field} not named: {stderr}");
    }
    assert!(!out.exists(), "nothing is written");
}

/// The text of a raw case: the names are spliced into a JSON document
/// as text (a duplicate key must survive), YAML is appended to BASE.
fn raw_text(name: &str, text: &str) -> String {
    if !name.ends_with(".json") && !text.starts_with('{') {
        return format!("{BASE}{text}");
    }
    if text.contains("\"base_domain\"") {
        return text.to_owned();
    }
    let names = r#""base_domain": "example.org", "server_name": "example.org", "matrix_host": "matrix.example.org", "element_host": "chat.example.org", "#;
    text.replacen('{', &format!("{{{names}"), 1)
}

#[test]
fn at_least_five_raw_and_good_cases() {
    assert!(RAW_CASES.len() >= 10 && GOOD_DOCUMENTS.len() >= 5);
}

#[test]
fn raw_cases_are_rejected_naming_their_field_and_nothing_is_written() {
    let tmp = support::TempDir::new("bad-inputs-raw");
    let ctx = RenderContext {
        output_dir: "/etc/ospw-matrix".into(),
    };
    let mut failures = Vec::new();
    for (i, (name, text, field)) in RAW_CASES.iter().enumerate() {
        let text = raw_text(name, text);
        match parse_host(&text, name).map(|host| render(&host, &ctx)) {
            Ok(Ok(_)) => failures.push(format!("library accepted {name}")),
            Ok(Err(errs)) if !errs.mentions(field) => {
                failures.push(format!("{name}: library names no {field}: {errs}"))
            }
            Err(e) if !e.to_string().contains(field) => {
                failures.push(format!("{name}: library names no {field}: {e}"))
            }
            _ => {}
        }
        let dir = tmp.path().join(format!("case-{i}"));
        std::fs::create_dir_all(&dir).expect("case dir");
        let config = dir.join(name);
        std::fs::write(&config, &text).expect("write case");
        let out = dir.join("out");
        let output = support::render_to(Some(&config), &out);
        let stderr = support::stderr_of(&output);
        if output.status.code() != Some(1) {
            failures.push(format!("{name}: exit {:?}: {stderr}", output.status.code()));
        }
        if !stderr.contains(field) {
            failures.push(format!("{name}: stderr does not name {field}: {stderr}"));
        }
        if out.exists() {
            failures.push(format!("{name}: output written"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn good_documents_render() {
    let tmp = support::TempDir::new("good-inputs");
    for (i, (name, text)) in GOOD_DOCUMENTS.iter().enumerate() {
        let text = raw_text(name, text);
        let dir = tmp.path().join(format!("case-{i}"));
        std::fs::create_dir_all(&dir).expect("case dir");
        let config = dir.join(name);
        std::fs::write(&config, &text).expect("write case");
        let output = support::render_to(Some(&config), &dir.join("out"));
        assert!(
            output.status.success(),
            "{name} refused: {}",
            support::stderr_of(&output)
        );
    }
    // The emoji written as a surrogate pair arrives whole.
    let host = parse_host(
        &raw_text(GOOD_DOCUMENTS[0].0, GOOD_DOCUMENTS[0].1),
        "python.json",
    )
    .expect("parses");
    assert_eq!(host.element.brand, "Chat \u{1F600}");
}

#[test]
fn deep_nesting_is_refused_quickly_in_every_format() {
    let tmp = support::TempDir::new("bad-inputs-deep");
    let n = 100_000;
    let cases = [
        ("deep-flow.yaml", format!("{BASE}synapse:\n  settings:\n    x: {}{}\n", "[".repeat(n), "]".repeat(n))),
        (
            "deep-block.yaml",
            format!(
                "{BASE}synapse:\n  settings:\n{}",
                (0..80).map(|i| format!("{}k{i}:\n", " ".repeat(4 + 2 * i))).collect::<String>()
                    + &format!("{}x\n", " ".repeat(4 + 2 * 80))
            ),
        ),
        (
            "deep.json",
            format!(
                "{{\"base_domain\": \"example.org\", \"synapse\": {{\"settings\": {{\"x\": {}{}}}}}}}",
                "[".repeat(n),
                "]".repeat(n)
            ),
        ),
    ];
    for (name, text) in cases {
        let config = tmp.path().join(name);
        std::fs::write(&config, &text).expect("write case");
        let started = std::time::Instant::now();
        let output = support::run(&["check", "--config", config.to_str().expect("utf8")]);
        let took = started.elapsed();
        let stderr = support::stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains("nested more than 64") || stderr.contains("at most 1024"),
            "{name}: {stderr}"
        );
        assert!(
            stderr.len() < 2000,
            "{name}: {} bytes of error",
            stderr.len()
        );
        // A generous bound (a correctness check, not a benchmark): before
        // the fix 100,000 levels took about a minute.
        assert!(
            took < std::time::Duration::from_secs(20),
            "{name} took {took:?}"
        );
    }
}

#[test]
fn no_error_prints_a_secret_or_a_whole_file_back() {
    let tmp = support::TempDir::new("bad-inputs-echo");
    let seed = "nJ3aZkS0kD2fFq9Y0rC1mV6oQ8yXhT4uWbE7pLs5gIw";
    // A signing key passed as the host description.
    let key = tmp.path().join("signing.key");
    std::fs::write(&key, format!("ed25519 a_AbCd {seed}\n")).expect("write key");
    // A secret pasted into a *_file field, and into a secret-named setting.
    let pasted = tmp.path().join("pasted.yaml");
    std::fs::write(
        &pasted,
        format!("{BASE}secrets:\n  macaroon_secret_key_file: '{seed}'\n  signing_key_file: 'hunter2secret'\nsynapse:\n  settings:\n    form_secret: '{seed}'\n"),
    )
    .expect("write case");
    // A large file that parses as one string.
    let big = tmp.path().join("big.yaml");
    std::fs::write(&big, "y".repeat(1 << 20)).expect("write big");
    for config in [&key, &pasted, &big] {
        for args in [
            vec!["check", "--config"],
            vec!["render", "--out", "/nonexistent/out", "--config"],
        ] {
            let mut args: Vec<&str> = args;
            args.push(config.to_str().expect("utf8"));
            let output = support::run(&args);
            let stderr = support::stderr_of(&output);
            assert_eq!(output.status.code(), Some(1), "{stderr}");
            for secret in [
                seed,
                &seed[..12],
                "hunter2s",
                "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
            ] {
                assert!(
                    !stderr.contains(secret),
                    "{args:?}: {secret} echoed: {stderr}"
                );
            }
            assert!(stderr.len() < 2000, "{args:?}: {} bytes", stderr.len());
        }
    }
}

/// The library's own errors (used directly, without the CLI's final
/// shortening) never show a value or a key that may be a secret, however
/// each component's model words its message.
#[test]
fn library_errors_never_show_a_secret() {
    let token = "q8GzTdW3kP5rXvN2mL7yHc4JxQ1w";
    let cases = [
        format!("turn: {{settings: {{denied-peer-ip: ['{token}']}}}}"),
        format!("turn: {{settings: {{allowed-peer-ip: '{token}'}}}}"),
        format!("turn: {{external_ip: '{token}'}}"),
        format!("turn: {{settings: {{user-quota: '{token}'}}}}"),
        format!("turn: {{settings: {{prometheus-address: '{token}'}}}}"),
        format!("element: {{settings: {{brand: {{password: '{token}'}}}}}}"),
        format!("element: {{settings: {{disable_guests: ['{token}']}}}}"),
        format!("element: {{settings: {{enable_presence_by_hs_url: {{'https://u:{token}@matrix.example.org': true}}}}}}"),
        format!("element: {{settings: {{logout_redirect_url: 'https://u:{token}@evil.example/'}}}}"),
        format!("synapse: {{settings: {{'syt_{token}_1A2b3C': 1}}}}"),
        format!("synapse: {{settings: {{users: {{'{token}': '@a:example.org'}}}}}}"),
        format!("synapse: {{settings: {{ip_range_whitelist: ['{token}']}}}}"),
        format!("synapse: {{settings: {{listeners: [{{port: 8008, type: http, bind_addresses: ['{token}']}}]}}}}"),
        format!("synapse: {{settings: {{enable_registration: '{token}'}}}}"),
        format!("synapse: {{listen: {{tcp: {{address: '{token}', port: 8008}}}}}}"),
        format!("proxy: {{admin: '{token}'}}"),
        format!("element: {{map_style_url: 'https://u:{token}@tiles.example.org/style.json'}}"),
    ];
    for case in &cases {
        let errors = library_errors(&case_yaml(case))
            .unwrap_or_else(|| panic!("{case}: accepted"))
            .join("\n");
        assert!(
            !errors.contains(&token[..8]),
            "{case}: the library printed the value back: {errors}"
        );
    }
}

#[test]
fn render_refuses_an_output_directory_holding_data_or_secrets() {
    let tmp = support::TempDir::new("bad-inputs-out");
    let out = tmp.path().join("out");
    for (patch, field) in [
        (
            format!("synapse:\n  data_dir: {}/data\n", out.display()),
            "synapse.data_dir",
        ),
        (
            format!("synapse:\n  media_store_path: {}\n", out.display()),
            "synapse.media_store_path",
        ),
        (
            format!("secrets:\n  dir: {}/secrets\n", out.display()),
            "secrets.dir",
        ),
        (
            format!("secrets:\n  form_secret_file: {}/form\n", out.display()),
            "secrets.form_secret_file",
        ),
        (
            format!("element:\n  webroot: {}/element/\n", out.display()),
            "element.webroot",
        ),
    ] {
        let config = tmp.path().join("host.yaml");
        std::fs::write(&config, format!("{BASE}{patch}")).expect("write case");
        let output = support::render_to(Some(&config), &out);
        let stderr = support::assert_fails_naming(&output, &[field, "render output directory"]);
        assert!(!out.exists(), "{field}: written: {stderr}");
        // `check` has no output directory: the same host passes there.
        let check = support::run(&["check", "--config", config.to_str().expect("utf8")]);
        assert!(
            check.status.success(),
            "{field}: {}",
            support::stderr_of(&check)
        );
    }
}
