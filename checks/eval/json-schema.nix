# A small JSON Schema checker, enough for the schema schemars writes for the
# host description (schema/host-description.schema.json): type (one or a
# list), const, enum, properties, required, additionalProperties (false,
# true or a schema), items, minimum/maximum, oneOf/anyOf and local $refs
# into $defs. `check schema value` returns a list of errors, each naming
# the field.
{ lib }:

root:

let
  defs = root."$defs" or { };

  resolve =
    schema:
    if schema ? "$ref" then
      let
        name = lib.removePrefix "#/$defs/" schema."$ref";
      in
      resolve (removeAttrs schema [ "$ref" ] // defs.${name})
    else
      schema;

  typeOk =
    type: value:
    if type == "object" then
      builtins.isAttrs value
    else if type == "array" then
      builtins.isList value
    else if type == "string" then
      builtins.isString value
    else if type == "integer" then
      builtins.isInt value
    else if type == "number" then
      builtins.isInt value || builtins.isFloat value
    else if type == "boolean" then
      builtins.isBool value
    else if type == "null" then
      value == null
    else
      throw "json-schema.nix: unknown type ${type}";

  describe =
    value:
    if builtins.isAttrs value then
      "an object"
    else if builtins.isList value then
      "an array"
    else
      builtins.toJSON value;

  check =
    path: schema': value:
    let
      schema = resolve schema';
      types = lib.toList (schema.type or [ ]);
      typeErrors = lib.optional (
        types != [ ] && !lib.any (t: typeOk t value) types
      ) "${path}: ${describe value} is not of type ${lib.concatStringsSep "|" types}";
      constErrors = lib.optional (
        schema ? const && value != schema.const
      ) "${path}: ${describe value} is not ${builtins.toJSON schema.const}";
      enumErrors = lib.optional (
        schema ? enum && !lib.elem value schema.enum
      ) "${path}: ${describe value} is not one of ${builtins.toJSON schema.enum}";
      rangeErrors =
        lib.optional (
          schema ? minimum && builtins.isInt value && value < schema.minimum
        ) "${path}: ${toString value} is below ${toString schema.minimum}"
        ++ lib.optional (
          schema ? maximum && builtins.isInt value && value > schema.maximum
        ) "${path}: ${toString value} is above ${toString schema.maximum}";
      alternatives =
        key:
        lib.optional (
          schema ? ${key} && !lib.any (alt: check path alt value == [ ]) schema.${key}
        ) "${path}: ${describe value} matches none of the ${key} alternatives";
      objectErrors =
        if builtins.isAttrs value && lib.elem "object" types then
          let
            properties = schema.properties or { };
            additional = schema.additionalProperties or true;
            perKey = lib.concatLists (
              lib.mapAttrsToList (
                key: v:
                if properties ? ${key} then
                  check "${path}.${key}" properties.${key} v
                else if additional == false then
                  [ "${path}.${key}: unknown field (not in the schema)" ]
                else if builtins.isAttrs additional then
                  check "${path}.${key}" additional v
                else
                  [ ]
              ) value
            );
            missing = map (key: "${path}.${key}: required field missing") (
              lib.filter (key: !(value ? ${key})) (schema.required or [ ])
            );
          in
          perKey ++ missing
        else
          [ ];
      arrayErrors =
        if builtins.isList value && schema ? items then
          lib.concatLists (lib.imap0 (i: v: check "${path}[${toString i}]" schema.items v) value)
        else
          [ ];
    in
    typeErrors
    ++ constErrors
    ++ enumErrors
    ++ rangeErrors
    ++ alternatives "oneOf"
    ++ alternatives "anyOf"
    ++ objectErrors
    ++ arrayErrors;
in
value: check "." root value
