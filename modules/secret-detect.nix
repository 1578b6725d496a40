# The inline-secret detector of the ospw-matrix library
# (crates/ospw-matrix/src/inline_secrets.rs), for the module's
# evaluation-time check: a secret written into a `settings` option would be
# in the world-readable Nix store as soon as the host description is
# instantiated, before `ospw-matrix render` could refuse it at build time.
#
# The key-name rules are the library's own word lists
# (schema/secret-rules.json, written by `ospw-matrix schema --secret-rules`);
# the value shapes are the library's clear ones: a PEM block, a signing key
# line, a URL with a password or a secret query parameter, a JSON Web Token,
# a known token prefix, an HTTP Authorization value, `password=` in a
# connection string, and keys that look like any of these. The library's
# remaining rule (a long random-looking string, by its character mix and
# entropy) runs at build time only. A test
# (crates/ospw-matrix-cli/tests/secret_rules.rs) checks that this file and
# the library find the same secrets in a shared corpus.
{ lib }:

let
  rules = builtins.fromJSON (builtins.readFile ../schema/secret-rules.json);

  isUpper = c: builtins.match "[A-Z]" c != null;
  isLower = c: builtins.match "[a-z]" c != null;
  isDigit = c: builtins.match "[0-9]" c != null;
  isAlnum = c: isUpper c || isLower c || isDigit c;

  # The words of a key: split at every character that is not an ASCII
  # letter or digit, at lower-to-upper case changes and before the last
  # capital of a run followed by a lower-case letter; lower-cased.
  words =
    key:
    let
      chars = lib.stringToCharacters key;
      n = builtins.length chars;
      step =
        acc: i:
        let
          c = builtins.elemAt chars i;
          next = if i + 1 < n then builtins.elemAt chars (i + 1) else "";
        in
        if !(isAlnum c) then
          {
            words = acc.words ++ lib.optional (acc.word != "") acc.word;
            word = "";
            prevLower = false;
            prevUpper = false;
          }
        else
          let
            split = isUpper c && acc.word != "" && (acc.prevLower || (acc.prevUpper && isLower next));
          in
          {
            words = if split then acc.words ++ [ acc.word ] else acc.words;
            word = (if split then "" else acc.word) + lib.toLower c;
            prevUpper = isUpper c;
            prevLower = isLower c || isDigit c;
          };
      final = builtins.foldl' step {
        words = [ ];
        word = "";
        prevLower = false;
        prevUpper = false;
      } (lib.range 0 (n - 1));
    in
    final.words ++ lib.optional (final.word != "") final.word;

  isSecretWord =
    w: builtins.elem w rules.secret_words || lib.any (s: lib.hasSuffix s w) rules.secret_suffixes;
  isHarmlessKey = key: lib.any (w: builtins.elem w rules.harmless_words) (words key);
  isSecretKey = key: lib.any isSecretWord (words key) && !(isHarmlessKey key);
  isCollection =
    key:
    let
      ws = words key;
    in
    isSecretKey key && ws != [ ] && lib.any (c: lib.hasSuffix c (lib.last ws)) rules.collection_words;

  trim = s: lib.head (builtins.match "[[:space:]]*(.*[^[:space:]])?[[:space:]]*" s);
  noSpace = s: builtins.match ".*[[:space:]].*" s == null;

  # `scheme://user:password@host`, or a query parameter named like a secret.
  urlHoldsSecret =
    v:
    let
      parts = builtins.match "([^:]*)://([^/?#]*)(.*)" v;
      authority = builtins.elemAt parts 1;
      rest = builtins.elemAt parts 2;
      at = lib.splitString "@" authority;
      userinfo = lib.concatStringsSep "@" (lib.init at);
      password = lib.concatStringsSep ":" (lib.drop 1 (lib.splitString ":" userinfo));
      query = if lib.hasInfix "?" v then lib.concatStringsSep "?" (lib.drop 1 (lib.splitString "?" v)) else "";
      pairs = lib.concatMap (lib.splitString ";") (
        lib.concatMap (lib.splitString "#") (lib.splitString "&" query)
      );
      secretPair =
        pair:
        let
          kv = builtins.match "([^=]*)=(.+)" pair;
        in
        kv != null && isSecretKey (builtins.elemAt kv 0);
    in
    parts != null
    && lib.toLower (builtins.elemAt parts 0) != "mxc"
    && (
      (builtins.length at > 1 && lib.hasInfix ":" userinfo && password != "")
      || lib.any secretPair pairs
    );

  looksLikeSecret =
    value:
    let
      v = if trim value == null then "" else trim value;
      lower = lib.toLower v;
      fields = lib.filter (f: builtins.isString f && f != "") (builtins.split "[[:space:]]+" v);
      password = builtins.match ".*password=([^[:space:]]).*" lower;
      auth = builtins.match "([^[:space:]]+)[[:space:]]+([^[:space:]]+)" v;
    in
    lib.hasInfix "-----BEGIN " v
    # A Synapse signing key: `ed25519 a_XXXX <seed>`.
    || (
      builtins.length fields >= 3
      && builtins.elemAt fields 0 == "ed25519"
      && builtins.stringLength (builtins.elemAt fields 2) >= 40
    )
    # A JSON Web Token.
    || (
      lib.hasPrefix "eyJ" v
      && builtins.stringLength v >= 30
      && builtins.match "[A-Za-z0-9_=-]+\\.[A-Za-z0-9_=-]+\\.[A-Za-z0-9_=-]+" v != null
    )
    || (
      builtins.stringLength v >= 20 && noSpace v && lib.any (p: lib.hasPrefix p v) rules.token_prefixes
    )
    || (
      auth != null
      && builtins.elem (lib.toLower (builtins.elemAt auth 0)) rules.auth_schemes
      && builtins.stringLength (builtins.elemAt auth 1) >= 6
    )
    || (if lib.hasInfix "://" v then urlHoldsSecret v else password != null);

  # Every inline secret in `value` (at `path`, under `key`): a list of
  # { path; kind; } where kind is "secret", "key" when the key itself looks
  # like a secret (its path then ends in a placeholder, not the key), or
  # "path" for a Nix path literal, which builtins.toJSON copies into the
  # store (a secret file given as ./secret.key would land there whole).
  find =
    path: key: secretParent: value:
    if builtins.elem key rules.public_key_subtrees then
      [ ]
    else if key != "" && looksLikeSecret key then
      [
        {
          path = "${lib.removeSuffix ".${key}" path}.<a key that looks like a secret>";
          kind = "key";
        }
      ]
    else
      let
        named = secretParent || (key != "" && isSecretKey key);
        found = [
          {
            inherit path;
            kind = "secret";
          }
        ];
      in
      if builtins.isString value then
        lib.optionals (value != "" && (named || looksLikeSecret value)) found
      else if builtins.isPath value then
        [
          {
            inherit path;
            kind = "path";
          }
        ]
      else if builtins.isInt value || builtins.isFloat value then
        lib.optionals named found
      else if builtins.isList value then
        lib.concatLists (lib.imap0 (i: find "${path}[${toString i}]" key named) value)
      else if builtins.isAttrs value && !(lib.isDerivation value) then
        let
          collection = secretParent || isCollection key;
        in
        lib.concatLists (
          lib.mapAttrsToList (k: find "${path}.${k}" k (collection && !(isHarmlessKey k))) value
        )
      else
        [ ];
in
{
  inherit
    words
    isSecretKey
    looksLikeSecret
    rules
    ;

  # Every inline secret ({ path; kind; }, see `find`) in the attribute set
  # `settings`, whose own path is `path`.
  findSecrets =
    path: settings: lib.concatLists (lib.mapAttrsToList (k: find "${path}.${k}" k false) settings);
}
