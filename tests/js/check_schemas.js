// Compiles every JSON Schema given to it with Ajv in strict mode (draft 2020-12, formats from
// ajv-formats) and validates the cases the Python test sends: the exit code says whether every
// schema compiled, every verdict is printed as JSON for the test to compare.
//   node tests/js/check_schemas.js cases.json   (cases.json: {"schemas": {name: schema}, "cases": [{schema, data}]})
"use strict";
const fs = require("fs");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const input = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
const compiled = {};
const problems = {};
for (const [name, schema] of Object.entries(input.schemas)) {
  try {
    compiled[name] = ajv.compile(schema);
  } catch (error) {
    problems[name] = String(error.message || error);
  }
}
const verdicts = input.cases.map(({ schema, data }) => {
  const validate = compiled[schema];
  if (!validate) return { schema, valid: null };
  const valid = validate(data);
  return { schema, valid, errors: valid ? [] : validate.errors.map((e) => `${e.instancePath} ${e.message}`) };
});
process.stdout.write(JSON.stringify({ compile_errors: problems, verdicts }));
process.exit(Object.keys(problems).length ? 1 : 0);
