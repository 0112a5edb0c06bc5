// Signs an HS256 access token with a third-party library and prints it, for tests/http/jwt_interop_test.cpp.
//
//   node sign_jwt.mjs --secret S --sub U --role R --jti J --iss I --aud A --iat 1700000000 --exp 1700000900
//                     [--lib jose|jsonwebtoken]
//
// jose (the default) uses SignJWT; jsonwebtoken uses jwt.sign. Exits 2 on bad arguments.
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import jsonwebtoken from 'jsonwebtoken';

const required = ['secret', 'sub', 'role', 'jti', 'iss', 'aud', 'iat', 'exp'];
let values;
try {
  ({ values } = parseArgs({
    options: Object.fromEntries([...required, 'lib'].map((name) => [name, { type: 'string' }])),
    strict: true,
  }));
} catch (error) {
  console.error(error.message);
  process.exit(2);
}
const missing = required.filter((name) => values[name] === undefined);
const lib = values.lib ?? 'jose';
const iat = Number(values.iat);
const exp = Number(values.exp);
if (missing.length > 0 || !['jose', 'jsonwebtoken'].includes(lib) || !Number.isInteger(iat) || !Number.isInteger(exp)) {
  console.error(`usage: sign_jwt.mjs --${required.join(' --')} [--lib jose|jsonwebtoken] (missing: ${missing.join(', ')})`);
  process.exit(2);
}

let token;
if (lib === 'jose') {
  token = await new SignJWT({ role: values.role })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(values.sub)
    .setJti(values.jti)
    .setIssuer(values.iss)
    .setAudience(values.aud)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(values.secret));
} else {
  token = jsonwebtoken.sign(
    { sub: values.sub, role: values.role, jti: values.jti, iss: values.iss, aud: values.aud, iat, exp },
    values.secret,
    { algorithm: 'HS256' },
  );
}
process.stdout.write(`${token}\n`);
