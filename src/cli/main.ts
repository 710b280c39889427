#!/usr/bin/env node
import { Command, Option } from 'commander';
import { envHelp } from '../config/env.js';
import { lazy, parsePort, parsePositiveInt, parsePrice } from './args.js';

const program = new Command('docsift')
  .description('On-premises document processing: queue documents, extract text, classify and extract fields with a local GGUF model.')
  .addHelpText('after', `
Environment (defaults in brackets):
${envHelp()}

Quick start:
  docsift make-test-model test-model.gguf
  DOCSIFT_MODEL=test-model.gguf docsift worker
  docsift enqueue --wait --json invoice.pdf`);

const queueOption = () => new Option('-q, --queue <name>', 'queue defined in queues/<name>.json').default('documents');

program.command('up')
  .description('Run a whole single-box node in one process: worker, HTTP API, Bull Board at /board and a watched folder (what npm start runs).')
  .option('--host <host>', 'address of the API and board', '127.0.0.1')
  .option('--port <port>', 'port of the API and board (0: any free port)', parsePort, 8080)
  .addOption(queueOption())
  .option('--watch-dir <dir>', 'watched folder: inbox/, processing/, done/ and failed/ inside it', '.')
  .option('--no-watch', 'no watched folder')
  .option('--board-write', 'let board users retry, remove, promote and pause jobs (read-only without it)', false)
  .addHelpText('after', `
Redis: when REDIS_URL does not answer and redis-server is installed, a private Redis is started on
REDIS_URL's port, on 127.0.0.1 with a generated password (in ./data/secrets/redis-password, mode
0600) and AOF persistence in ./data/redis. Model: DOCSIFT_MODEL, else the first .gguf in
DOCSIFT_MODELS_DIR; with none, up explains how to get one. Board credentials: DOCSIFT_BOARD_USER and
DOCSIFT_BOARD_PASSWORD, else user docsift with a generated password in ./data/secrets/board-password
(mode 0600; never logged).`)
  .action(lazy(() => import('./commands/up.js'), 'upCommand'));

program.command('worker')
  .description('Run a worker: take documents from a queue, extract text, classify and extract fields with the model, write results.')
  .addOption(queueOption())
  .option('-c, --concurrency <n>', 'jobs in flight and model sequences (default: the queue file\'s concurrency)', parsePositiveInt)
  .option('--grace-ms <ms>', 'on SIGTERM/SIGINT, how long in-flight jobs may finish before they are handed back to the queue', parsePositiveInt, 30_000)
  .option('--metrics-port <port>', 'serve Prometheus /metrics, /healthz and /readyz on this port (0: any free port)', parsePort, 9464)
  .option('--metrics-host <host>', 'address the metrics server binds (0.0.0.0 in a container whose metrics are scraped from outside)', '127.0.0.1')
  .action(lazy(() => import('./commands/worker.js'), 'workerCommand'));

program.command('enqueue')
  .description('Enqueue files. The same file for the same pipeline is one job; --force runs it again.')
  .argument('<files...>', 'documents to enqueue (PDF, text, markdown; the type is read from the bytes)')
  .addOption(queueOption())
  .option('-w, --wait', 'wait until every document is done or failed', false)
  .option('--json', 'one JSON line per file on stdout (with --wait: the result record or the failure with its code)', false)
  .option('-f, --force', 'process again even if the document already has a job, a result or a failure for this pipeline version', false)
  .option('--timeout <seconds>', 'with --wait: give up waiting after this long (documents stay queued)', parsePositiveInt, 3600)
  .option('--metadata <json>', 'JSON object copied onto every result record')
  .addHelpText('after', '\nExit status: 0 all done (or queued without --wait), 1 any failed or still pending at the timeout, 2 configuration error.')
  .action(lazy(() => import('./commands/enqueue.js'), 'enqueueCommand'));

program.command('result')
  .description('Print the stored result record of a document (its failure or state when it has no result).')
  .argument('<documentId>', 'the id printed by enqueue')
  .addOption(queueOption())
  .addHelpText('after', '\nExit status: 0 result printed, 1 failed or unknown, 3 still queued or running.')
  .action(lazy(() => import('./commands/result.js'), 'resultCommand'));

program.command('report')
  .description('Documents, tokens and model-seconds per tier (queue) and node, from the result records in Redis; with prices, what the same tokens would cost from an API.')
  .option('--since <duration>', 'how far back: 90m, 24h, 7d (records live retention.recordSeconds)', '24h')
  .option('--input-price <usd>', 'price per million input (prompt) tokens to compare with', parsePrice)
  .option('--output-price <usd>', 'price per million output tokens to compare with', parsePrice)
  .option('--json', 'one JSON object: documents, escalated, rows, and cost when priced', false)
  .addHelpText('after', `
Each document counts once: a document handed on to a larger tier counts in every tier it went
through (its record's tiers), a challenger's answer in the challenger's queue. The same figures
are in /metrics: docsift_tokens_total and docsift_model_seconds_total per queue, per scraped node.`)
  .action(lazy(() => import('./commands/report.js'), 'reportCommand'));

program.command('extract-text')
  .description('Show what the text stage sees for each file (same extractor and limits as the workers); of an e-mail, its body document and each attachment\'s format.')
  .argument('<files...>', 'documents to read')
  .addOption(queueOption())
  .option('--json', 'one JSON object per file: format, pages, chars, text (and attachments for an e-mail), or error with code and message', false)
  .addOption(new Option('--pdf-engine <engine>', 'read PDF text layers with this engine instead of the queue\'s pdf.engine (to compare them before changing a queue)').choices(['pdf.js', 'poppler']))
  .addHelpText('after', '\nExit status: 1 if any file failed; the others are still printed; 2 configuration error.')
  .action(lazy(() => import('./commands/extractText.js'), 'extractTextCommand'));

program.command('api')
  .description('Serve the HTTP API: enqueue by upload or path, document status and results, queue counts; OpenAPI at /openapi.json, docs at /docs.')
  .option('--host <host>', 'address to bind; any non-loopback address needs DOCSIFT_API_TOKENS', '127.0.0.1')
  .option('--port <port>', 'port (0: any free port)', parsePort, 8080)
  .option('--no-board', 'do not mount Bull Board at /board (mounted when DOCSIFT_BOARD_USER and DOCSIFT_BOARD_PASSWORD are set)')
  .option('--board-write', 'let board users retry, remove, promote and pause jobs (read-only without it)', false)
  .addHelpText('after', `
Environment:
${envHelp(['DOCSIFT_API_TOKENS', 'DOCSIFT_API_ROOTS', 'DOCSIFT_API_MAX_REQUEST_BYTES', 'DOCSIFT_API_MAX_FILES', 'DOCSIFT_CALLBACK_HOSTS'])}
Every route but /healthz and /readyz needs a token (16+ characters) when tokens are set.`)
  .action(lazy(() => import('./commands/api.js'), 'apiCommand'));

program.command('mail')
  .description('Read IMAP mailboxes (DOCSIFT_HOME/mailboxes.json) into their queues: each message a rule takes is enqueued exactly once, as an e-mail document or as its attachments, then marked seen, flagged or moved.')
  .option('--account <name>', 'only this account of mailboxes.json')
  .option('--once', 'read each folder once and exit (cron); without it, follow new mail (IMAP IDLE, and a poll every pollSeconds)', false)
  .addHelpText('after', `
Accounts, rules, after-actions, TLS and credentials (password or XOAUTH2 token, from an environment
variable or a file) are described in docs/MAIL.md. Several docsift mail processes may read the same
mailbox: each message is claimed in Redis before it is fetched and recorded done (per UIDVALIDITY)
once its documents are enqueued. docsift up reads the mailboxes too when mailboxes.json exists.`)
  .action(lazy(() => import('./commands/mail.js'), 'mailCommand'));

program.command('watch')
  .description('Watch a folder: files dropped into DIR/inbox are processed and moved to DIR/done (with NAME.result.json) or DIR/failed (with NAME.error.json).')
  .argument('<dir>', 'the watched folder; inbox/, processing/, done/ and failed/ are created inside it')
  .addOption(queueOption())
  .option('--poll', 'scan only, no file-system events (for NFS/SMB shares, which do not deliver them)', false)
  .option('--stable-ms <ms>', 'take a file once its size and mtime have not changed for this long', parsePositiveInt, 2000)
  .option('--interval-ms <ms>', 'how often inbox/ and processing/ are scanned', parsePositiveInt, 1000)
  .addOption(new Option('--duplicates <mode>', 'a file whose bytes already have a result: skip (reuse it) or reprocess').choices(['skip', 'reprocess']).default('skip'))
  .addHelpText('after', `
Subfolders: inbox/<queue>/ sends files to that queue; inbox/<type>/ (a folder of prompts/, e.g. inbox/invoice/)
extracts that document type without classification. Hidden and temporary files (.*, ~$*, *.part, *.tmp,
*.crdownload, *.swp) are ignored. Several watchers may share one folder (the claim is an atomic rename);
files a stopped watcher left in processing/ are finished by the next scan of any watcher.`)
  .action(lazy(() => import('./commands/watch.js'), 'watchCommand'));

program.command('board')
  .description('Serve Bull Board over every queue (and webhook deliveries) at /board, behind basic auth.')
  .option('--host <host>', 'address to bind', '127.0.0.1')
  .option('--port <port>', 'port (0: any free port)', parsePort, 8081)
  .option('--write', 'let board users retry, remove, promote and pause jobs (read-only without it)', false)
  .addHelpText('after', `
Environment (both required):
${envHelp(['DOCSIFT_BOARD_USER', 'DOCSIFT_BOARD_PASSWORD'])}`)
  .action(lazy(() => import('./commands/board.js'), 'boardCommand'));

program.command('doctor')
  .description('Check this node: configuration, Redis (reachable, persistence, noeviction), GPUs and driver, each llama.cpp build and whether it runs here (with the fix when not), backend memory, the model, every schema\'s grammar.')
  .addHelpText('after', '\nOne line per finding (ok, warn, error). Exit status 1 when any finding is an error.')
  .action(lazy(() => import('./commands/doctor.js'), 'doctorCommand'));

const gpu = program.command('gpu').description('GPU builds of llama.cpp: what runs on this machine is shown by docsift doctor.');
gpu.command('build')
  .description('Build llama.cpp with CUDA for this machine\'s GPUs (or --arch) from the source node-llama-cpp ships, offline; the worker uses it once it exists.')
  .option('--arch <list>', 'compute capabilities to build for, e.g. 80,86,89,90 or 9.0 (default: those nvidia-smi reports)')
  .option('--check', 'check the prerequisites and print what would be built, without building', false)
  .addHelpText('after', `
Needs: the CUDA toolkit (nvcc, cuda_runtime.h, cuBLAS headers and libcublas.so; CUDA_PATH when not
in /usr/local/cuda), cmake 3.18+, a C++ compiler. Each missing one is named with how to get it, and
nothing is built until all are there. The build (machine code for each architecture, PTX for the
highest) lands in node-llama-cpp's localBuilds folder, so npm ci removes it: build again after it,
or use deploy/docker/Dockerfile.cuda. DOCSIFT_GPU=auto prefers it whenever it runs here; see
docs/GPU.md.`)
  .action(lazy(() => import('./commands/gpu.js'), 'gpuBuildCommand'));

program.command('pipeline')
  .description('Print a queue\'s pipeline version and prompt versions as JSON: what names its documents (docs/JOB-PAYLOAD.md, "One document, one result").')
  .addOption(queueOption())
  .addHelpText('after', '\nReads the configuration only. Workers and API servers also publish it in Redis under <prefix>:pipeline:<queue>, and GET /v1/queues returns it.')
  .action(lazy(() => import('./commands/pipeline.js'), 'pipelineCommand'));

const models = program.command('models').description('Get and inspect GGUF models.');
models.command('list')
  .description('The curated catalogue and the models in DOCSIFT_MODELS_DIR.')
  .action(lazy(() => import('./commands/models.js'), 'modelsListCommand'));
models.command('pull')
  .description('Download a catalogue model (or an hf:/https: URI) into DOCSIFT_MODELS_DIR, with progress and a sha256 beside it.')
  .argument('<name>', 'a catalogue name (docsift models list) or a model URI')
  .action(lazy(() => import('./commands/models.js'), 'modelsPullCommand'));
models.command('inspect')
  .description('Architecture, parameters, quantisation, context length, and how many sequences of the queue\'s context fit in GPU or CPU memory.')
  .argument('<file>', '.gguf file')
  .addOption(queueOption())
  .option('--json', 'one JSON object', false)
  .action(lazy(() => import('./commands/models.js'), 'modelsInspectCommand'));

program.command('eval')
  .description('Score the model and prompts on labelled documents (FILE with FILE-stem.json beside it): per-field exact match, precision, recall, per-document pass/fail.')
  .argument('<dir>', 'folder of labelled documents, e.g. ../shared/corpus/invoices')
  .addOption(queueOption())
  .option('--type <type>', 'document type whose schema fields are scored (the documents are extracted as this type)', 'invoice')
  .option('--results <file>', 'score these result records (JSON lines, e.g. from enqueue --wait --json or --save-results) instead of running the model')
  .option('--save-results <file>', 'write the produced records as JSON lines, to score again later with --results')
  .option('--report <file>', 'write the full report as JSON')
  .addOption(new Option('--decoder <kind>', 'decode with this instead of the queue\'s model.decoder: walk (jump-forward) or grammar (every token sampled, the reference)').choices(['walk', 'grammar']))
  .addHelpText('after', '\nRuns the text stage and pipeline in this process with DOCSIFT_MODEL (no Redis or worker needed). Values are compared after normalising numbers, dates and whitespace. A table of confidence buckets against exact match follows, to choose review.minConfidence from.')
  .action(lazy(() => import('./commands/evaluate.js'), 'evalCommand'));

const reviewCmd = program.command('review').description('Results held for review (queue option review): list, show, accept or correct them.');
reviewCmd.command('list').description('Documents waiting for review, with the reasons.')
  .option('--json', 'the whole records, one per line', false)
  .action(lazy(() => import('./commands/review.js'), 'reviewListCommand'));
reviewCmd.command('show').description('The held record of a document.').argument('<documentId>')
  .action(lazy(() => import('./commands/review.js'), 'reviewShowCommand'));
reviewCmd.command('accept').description('Accept the record as it is: it becomes final and goes to every output.').argument('<documentId>')
  .option('--by <name>', 'who accepts (default: the user running the command)')
  .action(lazy(() => import('./commands/review.js'), 'reviewAcceptCommand'));
reviewCmd.command('correct').description('Fix fields: the corrected record becomes final and goes to every output, with who, when and the old values.').argument('<documentId>')
  .option('--set <field=value>', 'a field and its value (JSON when it parses, else text); repeat for more', (v: string, all: string[]) => [...all, v], [] as string[])
  .option('--by <name>', 'who corrects (default: the user running the command)')
  .action(lazy(() => import('./commands/review.js'), 'reviewCorrectCommand'));

program.command('export-training')
  .description('Write reviewed results (accepted or corrected) as JSONL chat examples for fine-tuning: the pipeline\'s prompts and the final fields.')
  .option('--since <date>', 'only documents reviewed since this date (YYYY-MM-DD or ISO timestamp)')
  .option('--out <file>', 'write here instead of stdout')
  .addHelpText('after', '\nThe document text is extracted again from the stored bytes (DOCSIFT_STORE=redis keeps them DOCSIFT_STORE_TTL_S); expired ones are skipped and counted.')
  .action(lazy(() => import('./commands/exportTraining.js'), 'exportTrainingCommand'));

const db = program.command('db').description('PostgreSQL output: tables in DOCSIFT_DATABASE_URL.');
db.command('migrate')
  .description('Create or update the docsift_results table (idempotent; safe on every deploy).')
  .action(lazy(() => import('./commands/db.js'), 'dbMigrateCommand'));

const deadletter = program.command('deadletter').description('Webhook and callback deliveries that failed their last attempt.');
deadletter.command('list')
  .description('List dead-lettered deliveries.')
  .option('--json', 'one JSON object per line', false)
  .action(lazy(() => import('./commands/deadletter.js'), 'deadletterListCommand'));
deadletter.command('replay')
  .description('Schedule dead-lettered deliveries again and remove them from the list.')
  .argument('[ids...]', 'ids printed by deadletter list')
  .option('--all', 'replay every entry', false)
  .action(lazy(() => import('./commands/deadletter.js'), 'deadletterReplayCommand'));

program.command('make-test-model')
  .description('Write the tiny random-weight llama GGUF the tests use (byte vocabulary, or a real tokenizer; meaningless output; drives the real inference path offline).')
  .argument('<path>', 'output .gguf file')
  .addOption(new Option('--quant <type>', 'weight type (q8_0 always with --tokenizer)').choices(['f32', 'q8_0']).default('f32'))
  .option('--tokenizer <dir>', 'a folder with a Hugging Face tokenizer.json and tokenizer_config.json (BPE): the model gets its vocabulary, merges, special tokens and chat template')
  .option('--pre <name>', 'llama.cpp pre-tokenizer for --tokenizer: qwen2, llama-bpe, smollm, ...', 'qwen2')
  .action(lazy(() => import('./commands/makeTestModel.js'), 'makeTestModelCommand'));

await program.parseAsync();
