// Reads an email's HTML on stdin; prints, as JSON, what the clients named in argv lack
// (errors: unsupported) or support in part (warnings), from the caniemail data.
import { readFileSync } from "node:fs";
import { doIUseEmail } from "@jsx-email/doiuse-email";

const html = readFileSync(0, "utf8");
const result = doIUseEmail(html, { emailClients: process.argv.slice(2) });
process.stdout.write(JSON.stringify({ errors: result.errors ?? [], warnings: result.warnings ?? [] }));
