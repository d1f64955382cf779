;;; orrery.el --- Live BEAM state for Elixir buffers, beside your language server  -*- lexical-binding: t; -*-

;; Copyright (C) 2025 The Orrery authors

;; Author: The Orrery authors
;; Maintainer: The Orrery authors
;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1") (eglot "1.9") (jsonrpc "1.0.14"))
;; Keywords: languages, tools, processes
;; URL: https://github.com/orrery-lsp/orrery
;; SPDX-License-Identifier: MIT

;; This file is not part of GNU Emacs.

;;; Commentary:

;; Orrery is a language server and debug adapter for Elixir that
;; attaches to the running BEAM node of your project.  This package
;; connects Emacs to it, beside the static language server you already
;; use (Expert, ElixirLS, Lexical, Next LS), never instead of it:
;;
;; - `orrery-client' says how: `companion' (the default with eglot) runs
;;   "orrery lsp" over a jsonrpc connection of its own
;;   (`orrery-companion-mode', orrery-companion.el) while eglot keeps your
;;   server; with lsp-mode, Orrery is an add-on client that runs beside
;;   your server in the same buffer (orrery-lsp-mode.el); `eglot' makes
;;   Orrery eglot's server for Elixir buffers (the old way, for those who
;;   want Orrery alone).  `orrery-ensure' in your Elixir mode hook starts
;;   whichever applies, and `orrery-doctor' says which one runs and what it
;;   is attached to;
;; - the fallback major mode `orrery-elixir-mode' is used for .ex/.exs
;;   files only when no other Elixir mode is available;
;; - sends the node to attach to (`orrery-node', `orrery-cookie-file', ...)
;;   as initializationOptions and as the `orrery' configuration section;
;; - shows live values: inlay hints through eglot on Emacs 29+, and overlays
;;   with what code lenses would show (eglot never asks for code lenses):
;;   process counts, loaded versions, call counts, and on Emacs 28 the inlay
;;   hints too ("1 proc · %{count: 3}").  They are refreshed when the server
;;   says values changed and on a timer;
;; - commands: `orrery-attach', `orrery-status', `orrery-rollback', and
;;   `orrery-inspect', `orrery-processes' (orrery-views.el),
;;   `orrery-refresh' (orrery-live.el), `orrery-step-back' and
;;   `orrery-reverse-continue' for dap-mode and dape sessions
;;   (orrery-debug.el).
;;
;; Quick start:
;;
;;   (require 'orrery)
;;   (setq orrery-executable "/path/to/orrery")   ; unless it is on PATH
;;   (setq orrery-node "kv@myhost")                ; or nil: Orrery runs the app
;;   (add-hook 'elixir-mode-hook #'eglot-ensure)   ; your server, as before
;;   (add-hook 'elixir-mode-hook #'orrery-ensure)  ; Orrery beside it
;;
;; Without `orrery-node', Orrery starts the workspace's mix app itself as a
;; node, attaches to it, and stops it when Emacs disconnects.

;;; Code:

(require 'cl-lib)
(require 'seq)
(require 'subr-x)
(require 'jsonrpc)
(require 'eglot)
(require 'project)

(declare-function orrery--schedule-refresh "orrery-live" (server what))

;;;; Customization

(defgroup orrery nil
  "Live state of a running BEAM node in Elixir buffers."
  :group 'languages
  :link '(url-link :tag "Homepage" "https://github.com/orrery-lsp/orrery")
  :prefix "orrery-")

(defcustom orrery-executable "orrery"
  "The Orrery binary: an absolute file name, or a program name.
A program name is looked up in the variable `exec-path'."
  :type 'string)

(defcustom orrery-client 'auto
  "How Orrery runs in Elixir buffers, beside or instead of your language server.
`auto': beside lsp-mode as an add-on client where lsp-mode manages
the buffer, else `companion'.
`companion': over a connection of its own (`orrery-companion-mode'),
while eglot (or lsp-mode) keeps your server (Expert, ElixirLS, ...).
`lsp-mode': only as lsp-mode's add-on client.
`eglot': as eglot's server for Elixir buffers, instead of any other
\(for those who want Orrery alone).
Set it before loading orrery, or with `customize-set-variable'."
  :type '(choice (const :tag "lsp-mode add-on where lsp-mode runs, else companion" auto)
                 (const :tag "Companion connection beside eglot or lsp-mode" companion)
                 (const :tag "lsp-mode add-on client" lsp-mode)
                 (const :tag "Eglot's server (Orrery alone)" eglot))
  :set (lambda (symbol value)
         (set-default symbol value)
         (when (fboundp 'orrery--sync-eglot-registration)
           (orrery--sync-eglot-registration))))

(defcustom orrery-static-features 'auto
  "Whether Orrery also answers static requests: symbols, definition, completion.
Your static language server answers those; Orrery's own would
duplicate them.  `auto' turns them off when Orrery runs beside
another server (`companion', lsp-mode add-on) and on when Orrery is
eglot's only server; t and nil force them on or off.  Sent as the
`staticFeatures' setting; hovers then carry only live values."
  :type '(choice (const :tag "Off beside another server, on alone" auto)
                 (const :tag "On" t)
                 (const :tag "Off" nil)))

(defcustom orrery-node nil
  "The node to attach to, as name@host.
Nil means the embedded default: Orrery starts the workspace's mix
application as a node itself, attaches, and stops it on shutdown."
  :type '(choice (const :tag "Start the app (embedded default)" nil)
                 (string :tag "Node (name@host)")))

(defcustom orrery-cookie-file nil
  "A file holding the node's cookie.
Nil lets Orrery use ~/.erlang.cookie.  The cookie itself is never
sent through Emacs, so it never lands in eglot's event log."
  :type '(choice (const :tag "Default (~/.erlang.cookie)" nil) file))

(defcustom orrery-allow-writes 'default
  "Whether Orrery may change the node (hot swap, rollback, state changes).
The symbol `default' leaves the choice to Orrery: allowed for nodes
on this host, denied for remote ones."
  :type '(choice (const :tag "Orrery's default" default)
                 (const :tag "Allow" t)
                 (const :tag "Deny" nil)))

(defcustom orrery-refresh-ms nil
  "How often Orrery refreshes live values, in milliseconds.
Nil means Orrery's default (1000)."
  :type '(choice (const :tag "Default" nil) natnum))

(defcustom orrery-attach-peers 'default
  "Whether Orrery also attaches to the node's cluster peers."
  :type '(choice (const :tag "Orrery's default (yes)" default)
                 (const :tag "Yes" t)
                 (const :tag "No" nil)))

(defcustom orrery-inlay-hints '(calls processes ets)
  "Which inlay hints Orrery computes."
  :type '(set (const :tag "Call counts after def heads" calls)
              (const :tag "Processes and state after use GenServer" processes)
              (const :tag "ETS table sizes" ets)))

(defcustom orrery-live-call-time 'default
  "Whether Orrery shows mean call times in def hovers and inlay hints.
The symbol `default' leaves the choice to Orrery: on where the node has
trace sessions (OTP 27+, Orrery times calls in a session of its own), off
on OTP 25-26, where timing calls makes Orrery the tracer of every process
that has none, so a tracer started later (dbg, recon, redbug) cannot trace
those processes until this is turned off."
  :type '(choice (const :tag "Orrery's default" default)
                 (const :tag "On" t)
                 (const :tag "Off" nil)))

(defcustom orrery-command nil
  "With no `orrery-node': the mix task Orrery runs to serve the app.
For example \"mix phx.server\" or \"MIX_ENV=dev mix run --no-halt\".
nil leaves it to Orrery: mix phx.server in a Phoenix project, else
mix run --no-halt."
  :type '(choice (const :tag "Orrery's default" nil) string))

(defcustom orrery-attach-running nil
  "With no `orrery-node', what to do when a node of the project already runs.
That is your own iex -S mix phx.server in the project root.  nil (or
`ask') asks, `always' attaches to it, `never' starts Orrery's own node,
a second copy of the app."
  :type '(choice (const :tag "Ask" nil)
                 (const :tag "Attach to it" always)
                 (const :tag "Start Orrery's own node" never)))

(defcustom orrery-live-overlays t
  "Non-nil means show live values as overlays in Elixir buffers.
These overlays show what code lenses would: process counts, loaded
versions and call counts, above the line they belong to."
  :type 'boolean)

(defcustom orrery-hint-overlays 'auto
  "Whether to draw Orrery's inlay hints as overlays of this package.
The symbol `auto' draws them only when eglot cannot (before Emacs 29),
t always, nil never."
  :type '(choice (const :tag "When eglot has no inlay hints" auto)
                 (const :tag "Always" t)
                 (const :tag "Never" nil)))

(defcustom orrery-refresh-interval 5
  "Seconds between timed refreshes of live overlays, or nil for none.
The server also asks for a refresh whenever a visible value
changes; the timer is a fallback."
  :type '(choice (const :tag "Only when the server asks" nil) number))

(defcustom orrery-request-timeout 15
  "Seconds to wait for Orrery's answer to a command."
  :type 'number)

(defcustom orrery-processes-limit 200
  "How many processes `orrery-processes' lists per node."
  :type 'natnum)

(defcustom orrery-mix-project-root t
  "Non-nil means the language server's root is the outermost mix project.
Eglot otherwise uses `project-current', which for a mix app inside a
larger repository is the repository root."
  :type 'boolean)

(defface orrery-lens-face
  '((t :inherit shadow :height 0.9))
  "Face of the live values shown above a line.")

(defface orrery-lens-button-face
  '((t :inherit (link orrery-lens-face) :underline nil))
  "Face of clickable entries among the live values.")

(defface orrery-hint-face
  '((t :inherit shadow :slant italic))
  "Face of inlay hints drawn by this package (Emacs 28).")

;;;; Fallback major mode

(defvar orrery-elixir-mode-syntax-table
  (let ((st (make-syntax-table)))
    (modify-syntax-entry ?# "<" st)
    (modify-syntax-entry ?\n ">" st)
    (modify-syntax-entry ?\" "\"" st)
    (modify-syntax-entry ?\' "\"" st)
    (modify-syntax-entry ?_ "_" st)
    (modify-syntax-entry ?? "_" st)
    (modify-syntax-entry ?! "_" st)
    (modify-syntax-entry ?: "'" st)
    (modify-syntax-entry ?@ "'" st)
    st)
  "Syntax table of `orrery-elixir-mode'.")

(defconst orrery-elixir-font-lock-keywords
  `((,(regexp-opt '("defmodule" "defprotocol" "defimpl" "def" "defp" "defmacro"
                    "defmacrop" "defguard" "defguardp" "defstruct" "defexception"
                    "defdelegate" "defoverridable")
                  'symbols)
     . font-lock-keyword-face)
    (,(regexp-opt '("do" "end" "fn" "case" "cond" "with" "if" "unless" "else"
                    "try" "catch" "rescue" "after" "receive" "when" "and" "or"
                    "not" "in" "import" "alias" "require" "use" "quote"
                    "unquote" "raise" "reraise" "throw" "for")
                  'symbols)
     . font-lock-keyword-face)
    ("\\_<def\\(?:p\\|macrop?\\|guardp?\\)?[ \t]+\\([a-z_][A-Za-z0-9_?!]*\\)"
     1 font-lock-function-name-face)
    ("\\_<[A-Z][A-Za-z0-9_]*\\(?:\\.[A-Z][A-Za-z0-9_]*\\)*" . font-lock-type-face)
    ("\\_<:[a-z_][A-Za-z0-9_?!@]*" . font-lock-constant-face)
    ("\\_<[a-z_][A-Za-z0-9_]*:\\(?:[ \t]\\|$\\)" . font-lock-constant-face)
    ("@[a-z_][A-Za-z0-9_]*" . font-lock-preprocessor-face))
  "Font lock keywords of `orrery-elixir-mode'.")

;;;###autoload
(define-derived-mode orrery-elixir-mode prog-mode "Elixir[orrery]"
  "A small major mode for Elixir, for when no other Elixir mode is installed.
It knows comments, strings and keywords and indents relative to the
previous line; install `elixir-mode' or use `elixir-ts-mode' for more."
  :syntax-table orrery-elixir-mode-syntax-table
  (setq-local comment-start "# ")
  (setq-local comment-start-skip "#+[ \t]*")
  (setq-local indent-line-function #'indent-relative)
  (setq-local indent-tabs-mode nil)
  (setq-local font-lock-defaults '(orrery-elixir-font-lock-keywords)))

(defun orrery--elixir-mode-available-p ()
  "Return non-nil when an Elixir major mode other than ours can be used."
  (or (fboundp 'elixir-mode)
      (and (fboundp 'elixir-ts-mode)
           (fboundp 'treesit-language-available-p)
           (treesit-language-available-p 'elixir))))

;;;###autoload
(unless (or (fboundp 'elixir-mode)
            (and (fboundp 'elixir-ts-mode)
                 (fboundp 'treesit-language-available-p)
                 (treesit-language-available-p 'elixir)))
  ;; Appended, so that any Elixir mode installed later wins.
  (add-to-list 'auto-mode-alist '("\\.exs?\\'" . orrery-elixir-mode) t))

;;;; Eglot integration

(defclass orrery-eglot-server (eglot-lsp-server) ()
  :documentation "An eglot connection to Orrery's language server.")

;;;; Connections to Orrery, whichever client runs them

;; An Orrery "server" below is any live connection to `orrery lsp': an
;; `orrery-eglot-server', a companion connection (orrery-companion.el) or
;; an lsp-mode workspace (orrery-lsp-mode.el).  Each kind adds methods to
;; these generic functions and functions to the two hooks.

(defvar orrery--statuses (make-hash-table :test #'eq :weakness 'key)
  "The last `orrery/status' answer of each server.")

(defun orrery--server-status (server)
  "Return SERVER's last `orrery/status' answer, or nil."
  (and server (gethash server orrery--statuses)))

(gv-define-setter orrery--server-status (status server)
  `(puthash ,server ,status orrery--statuses))

(cl-defgeneric orrery--running-p (_server)
  "Return non-nil if SERVER is a running connection to Orrery."
  nil)

(cl-defmethod orrery--running-p ((server orrery-eglot-server))
  "Return non-nil if the eglot SERVER is running."
  (jsonrpc-running-p server))

(cl-defgeneric orrery--async-request (server method params &rest args)
  "Send METHOD with PARAMS to SERVER; ARGS as for `jsonrpc-async-request'."
  (apply #'jsonrpc-async-request server method params args))

(cl-defgeneric orrery--server-root (server)
  "Return the project root directory SERVER serves."
  (project-root (eglot--project server)))

(cl-defgeneric orrery--server-kind (_server)
  "Return the kind of SERVER: `eglot', `companion' or `lsp-mode'."
  'eglot)

(cl-defgeneric orrery--flush-changes (_server)
  "Send the current buffer's pending edits to SERVER."
  (when (fboundp 'eglot--signal-textDocument/didChange)
    (eglot--signal-textDocument/didChange)))

(cl-defgeneric orrery--reconnect (server)
  "Restart SERVER, so it attaches with the current settings."
  (eglot-reconnect server))

(defvar orrery--buffer-server-functions nil
  "Functions returning the current buffer's Orrery server, or nil.")

(defvar orrery--servers-functions nil
  "Functions returning lists of running Orrery servers.")

(defun orrery--buffer-server ()
  "Return the current buffer's running Orrery server, or nil."
  (let ((s (or (let ((e (eglot-current-server)))
                 (and (cl-typep e 'orrery-eglot-server) e))
               (run-hook-with-args-until-success 'orrery--buffer-server-functions))))
    (and s (orrery--running-p s) s)))

(defun orrery--executable ()
  "Return the Orrery binary to run."
  (if (file-name-absolute-p orrery-executable)
      orrery-executable
    (or (executable-find orrery-executable) orrery-executable)))

;;;###autoload
(defun orrery-eglot-contact (&optional _interactive)
  "Return the eglot contact for Orrery's language server."
  (list 'orrery-eglot-server (orrery--executable) "lsp"))

;;;###autoload
(defconst orrery-eglot-modes
  '((elixir-mode :language-id "elixir")
    (elixir-ts-mode :language-id "elixir")
    (orrery-elixir-mode :language-id "elixir"))
  "Major modes eglot manages with Orrery, with their LSP language ids.")

(defun orrery--sync-eglot-registration ()
  "Make eglot run Orrery for Elixir buffers only if `orrery-client' is `eglot'.
Otherwise eglot keeps the user's own server for them."
  (when (boundp 'eglot-server-programs)
    (let ((entry (cons orrery-eglot-modes #'orrery-eglot-contact)))
      (if (eq orrery-client 'eglot)
          (add-to-list 'eglot-server-programs entry)
        (setq eglot-server-programs
              (cl-remove-if (lambda (e) (eq (cdr-safe e) #'orrery-eglot-contact))
                            eglot-server-programs))))))

(with-eval-after-load 'eglot
  (orrery--sync-eglot-registration))

(defun orrery--elixir-buffer-p ()
  "Return non-nil if the current buffer is in one of `orrery-eglot-modes'."
  (apply #'derived-mode-p (mapcar #'car orrery-eglot-modes)))

(defun orrery--json-bool (value)
  "Return VALUE as a JSON boolean for jsonrpc."
  (if value t :json-false))

(defun orrery-settings (&optional beside)
  "Return Orrery's settings from the customization group, as a JSON plist.
These go to the server as initializationOptions and as the `orrery'
section of workspace/configuration.  BESIDE non-nil means Orrery runs
beside another language server: `orrery-static-features' `auto' then
turns its static features off."
  (append
   (pcase orrery-static-features
     ('auto (when beside (list :staticFeatures "off")))
     ('nil (list :staticFeatures "off"))
     (_ (list :staticFeatures "on")))
   (when orrery-node (list :node orrery-node))
   (when orrery-cookie-file
     (list :cookieFile (expand-file-name orrery-cookie-file)))
   (unless (eq orrery-allow-writes 'default)
     (list :allowWrites (orrery--json-bool orrery-allow-writes)))
   (when orrery-refresh-ms (list :refreshMs orrery-refresh-ms))
   (unless (eq orrery-attach-peers 'default)
     (list :attachPeers (orrery--json-bool orrery-attach-peers)))
   (unless (eq orrery-live-call-time 'default)
     (list :liveCallTime (orrery--json-bool orrery-live-call-time)))
   (when orrery-command (list :command orrery-command))
   (when (memq orrery-attach-running '(ask always never))
     (list :attachRunning (symbol-name orrery-attach-running)))
   (list :inlayHints
         (list :calls (orrery--json-bool (memq 'calls orrery-inlay-hints))
               :processes (orrery--json-bool (memq 'processes orrery-inlay-hints))
               :ets (orrery--json-bool (memq 'ets orrery-inlay-hints))))))

(cl-defmethod eglot-initialization-options ((_server orrery-eglot-server))
  "Send Orrery's settings (see `orrery-settings') at initialization."
  (orrery-settings))

(cl-defmethod eglot-client-capabilities :around ((_server orrery-eglot-server))
  "Announce that we handle Orrery's code lens and inlay hint refresh requests."
  (let* ((caps (copy-sequence (cl-call-next-method)))
         (workspace (copy-sequence (plist-get caps :workspace))))
    (setq workspace (plist-put workspace :codeLens '(:refreshSupport t)))
    (setq workspace (plist-put workspace :inlayHint '(:refreshSupport t)))
    (plist-put caps :workspace workspace)))

(cl-defmethod eglot-handle-request
  ((_server orrery-eglot-server) (_method (eql workspace/configuration))
   &rest params)
  "Answer the `orrery' section from our settings unless the user set it.
PARAMS holds the configuration items; `eglot-workspace-configuration'
takes precedence when it has an `orrery' section."
  (let ((answers (cl-call-next-method))
        (items (plist-get params :items)))
    (apply #'vector
           (cl-loop for item across items
                    for answer across answers
                    collect (if (and (null answer)
                                     (equal (plist-get item :section) "orrery"))
                                (orrery-settings)
                              answer)))))

(cl-defmethod eglot-handle-request
  ((server orrery-eglot-server) (_method (eql workspace/codeLens/refresh))
   &rest _params)
  "Refresh live overlays of SERVER's buffers, as the server asks."
  (orrery--schedule-refresh server 'lenses)
  nil)

(cl-defmethod eglot-handle-request
  ((server orrery-eglot-server) (_method (eql workspace/inlayHint/refresh))
   &rest _params)
  "Refresh inlay hints of SERVER's buffers, as the server asks."
  (orrery--schedule-refresh server 'hints)
  ;; Let a future eglot that handles this request itself do so too.
  (ignore-error cl-no-next-method (cl-call-next-method))
  nil)

(defun orrery--server-p (server)
  "Return non-nil if SERVER is a live Orrery connection."
  (and server (orrery--running-p server)))

(defvar-local orrery--view-server nil
  "The Orrery server an Orrery view buffer belongs to.")

(defun orrery--all-servers ()
  "Return all live Orrery servers."
  (let (found)
    (maphash (lambda (_project servers)
               (dolist (s servers)
                 (when (orrery--server-p s) (push s found))))
             eglot--servers-by-project)
    (dolist (f orrery--servers-functions)
      (dolist (s (funcall f))
        (when (orrery--server-p s) (cl-pushnew s found))))
    found))

(defun orrery--server (&optional noerror)
  "Return the Orrery server for the current buffer.
That is the buffer's eglot server, the server of an Orrery view, or
the only running Orrery server.  Signal a `user-error' when there is
none, unless NOERROR."
  (or (and (orrery--server-p orrery--view-server) orrery--view-server)
      (orrery--buffer-server)
      (let ((all (orrery--all-servers))) (and (= (length all) 1) (car all)))
      (unless noerror
        (user-error "No Orrery connection here: open an Elixir file and \
run `orrery-ensure' or `orrery-attach'"))))

(defun orrery--error-message (err)
  "Return the server's message in the jsonrpc error ERR."
  (or (alist-get 'jsonrpc-error-message (cdr-safe err))
      (error-message-string err)))

(defun orrery--request-sync (server method params)
  "Send METHOD with PARAMS to SERVER, wait for the answer and return it.
Signal `jsonrpc-error' like `jsonrpc-request' when the server answers
with an error or not within `orrery-request-timeout' seconds.

Unlike `jsonrpc-request' in jsonrpc 1.0.14 (Emacs 28), this never
throws out of the process filter: that left the messages which came
in the same chunk as the answer (say a refresh request from the
server) unprocessed until the server wrote again."
  (let ((state nil) (result nil) (failure nil))
    (orrery--async-request
     server method params
     :success-fn (lambda (r) (setq result r state 'done))
     :error-fn (lambda (e) (setq failure e state 'failed))
     :timeout-fn (lambda () (setq failure '(:message "Timed out") state 'failed))
     :timeout orrery-request-timeout)
    (while (null state)
      (accept-process-output nil 0.05))
    (when (eq state 'failed)
      (signal 'jsonrpc-error
              (list (format "Orrery: %s failed" method)
                    (cons 'jsonrpc-error-code (plist-get failure :code))
                    (cons 'jsonrpc-error-message (plist-get failure :message))
                    (cons 'jsonrpc-error-data (plist-get failure :data)))))
    result))

(defun orrery-request (method &optional params server)
  "Send METHOD with PARAMS to the Orrery SERVER and return the result.
SERVER defaults to `orrery--server'.  A server error becomes a
`user-error' carrying the server's message."
  (let ((server (or server (orrery--server))))
    (condition-case err
        (orrery--request-sync server method params)
      (jsonrpc-error
       (user-error "Orrery: %s" (orrery--error-message err))))))

;;;; Project root

(defun orrery--mix-root (dir)
  "Return the outermost directory above DIR holding a mix.exs, or nil."
  (let (root)
    (while (and dir (setq dir (locate-dominating-file dir "mix.exs")))
      (setq root dir
            dir (file-name-directory (directory-file-name dir)))
      (when (equal dir root) (setq dir nil)))
    root))

(defun orrery--project-find (dir)
  "Find the mix project of DIR for eglot, per `orrery-mix-project-root'."
  (when (and orrery-mix-project-root
             (bound-and-true-p eglot-lsp-context)
             (orrery--elixir-buffer-p))
    (when-let ((root (orrery--mix-root dir)))
      (cons 'orrery-mix (expand-file-name root)))))

(cl-defmethod project-root ((project (head orrery-mix)))
  "Return the root directory of the mix PROJECT."
  (cdr project))

(add-hook 'project-find-functions #'orrery--project-find)

(defun orrery--root ()
  "Return the root of the current Elixir project."
  (or (let ((s (orrery--server t))) (and s (orrery--server-root s)))
      (orrery--mix-root default-directory)
      (when-let ((p (project-current))) (project-root p))
      default-directory))

;;;; Live values (orrery-live.el)

(autoload 'orrery-live-mode "orrery-live"
  "Show live values of the attached node in this Elixir buffer." t)
(autoload 'orrery-refresh "orrery-live"
  "Fetch live values for the current buffer now." t)
(autoload 'orrery--schedule-refresh "orrery-live")
(autoload 'orrery--managed-mode-hook "orrery-live")

;; Eglot turns `orrery-live-mode' on in the buffers it manages with Orrery.
(add-hook 'eglot-managed-mode-hook #'orrery--managed-mode-hook)

;;;; Views (orrery-views.el)

(autoload 'orrery-inspect "orrery-views"
  "Show the full state of TARGET, a module, registered name or pid." t)
(autoload 'orrery-processes "orrery-views"
  "List the processes of the attached nodes; return the buffer." t)

;;;; Module at point

(defconst orrery--module-re "[A-Z][A-Za-z0-9_]*\\(?:\\.[A-Z][A-Za-z0-9_]*\\)*"
  "A module alias, such as KV.Bucket.")

(defun orrery-module-at-point ()
  "Return the module named at point, else the module around point, or nil."
  (save-excursion
    (or (let ((case-fold-search nil))
          (skip-chars-backward "A-Za-z0-9_.")
          (and (looking-at orrery--module-re)
               (match-string-no-properties 0)))
        (let ((case-fold-search nil))
          (and (re-search-backward
                (concat "^[ \t]*defmodule[ \t]+\\(" orrery--module-re "\\)")
                nil t)
               (match-string-no-properties 1))))))

(defun orrery--read-target (prompt)
  "Read a module, registered name or pid with PROMPT."
  (let ((default (orrery-module-at-point)))
    (read-string (if default (format "%s (default %s): " prompt default)
                   (format "%s: " prompt))
                 nil nil default)))

;;;; Commands

;;;###autoload
(defun orrery-attach (node &optional cookie-file)
  "Attach Orrery to NODE (name@host), reading the cookie from COOKIE-FILE.
An empty NODE means the embedded default: Orrery starts the mix app.
Reconnects this project's Orrery server, or starts one."
  (interactive
   (list (read-string (format "Attach to node (name@host, empty: start the app)%s: "
                              (if orrery-node (format " [%s]" orrery-node) ""))
                      nil nil orrery-node)
         (let ((f (read-file-name "Cookie file (a directory: keep the current one): "
                                  nil orrery-cookie-file t)))
           (and f (not (file-directory-p f)) f))))
  (setq orrery-node (and node (not (string-empty-p node)) node))
  (when cookie-file (setq orrery-cookie-file cookie-file))
  (let ((server (orrery--buffer-server)))
    (cond ((orrery--server-p server) (orrery--reconnect server))
          ((and buffer-file-name
                (orrery--elixir-buffer-p))
           (orrery-ensure t))
          (t (user-error "Open an Elixir file of the project first"))))
  (message "Orrery: attaching to %s" (or orrery-node "the app (started by Orrery)")))

(defun orrery--describe-status (status)
  "Return a one-line summary of the `orrery/status' answer STATUS."
  (let* ((state (plist-get status :status))
         (state (if (stringp state) state (plist-get state :state))))
    (if (eq (plist-get status :attached) t)
        (format "Orrery: attached to %s (%s%s%s)"
                (mapconcat
                 (lambda (n)
                   (let ((agent (plist-get n :agent)))
                     (format "%s: OTP %s, Elixir %s%s"
                             (plist-get n :name) (plist-get n :otp)
                             (plist-get n :elixir)
                             (cond ((stringp agent) (format ", agent %s" agent))
                                   ((eq agent t) ", agent loaded")
                                   (t ", no agent")))))
                 (plist-get status :nodes) "; ")
                (or (plist-get status :mode) "attach")
                (if (eq (plist-get status :allowWrites) t)
                    ", writes allowed" ", read-only")
                (if (plist-get status :managedPid)
                    (format ", app started by Orrery as pid %s"
                            (plist-get status :managedPid))
                  ""))
      (format "Orrery: not attached%s%s"
              (if state (format " (%s)" state) "")
              (if (plist-get status :reason)
                  (format ": %s" (plist-get status :reason))
                "")))))

;;;###autoload
(defun orrery-status ()
  "Show which nodes Orrery is attached to, and return the status plist."
  (interactive)
  (let* ((server (orrery--server))
         (status (orrery-request :orrery/status nil server)))
    (setf (orrery--server-status server) status)
    (force-mode-line-update t)
    (message "%s" (orrery--describe-status status))
    status))

;;;###autoload
(defun orrery-rollback (module)
  "Roll MODULE back to the version loaded before the last hot swap.
Shows the server's answer, or its error when it cannot."
  (interactive (list (orrery--read-target "Roll back module")))
  (let ((server (orrery--server)))
    (condition-case err
        (let ((result (orrery--request-sync
                       server :workspace/executeCommand
                       (list :command "orrery.rollback" :arguments (vector module)))))
          (message "Orrery: %s" (if result (orrery--summary result)
                                  (format "rolled back %s" module)))
          result)
      (jsonrpc-error
       (let ((msg (format "Orrery: rollback of %s failed: %s"
                          module (orrery--error-message err))))
         (message "%s" msg)
         (user-error "%s" msg))))))

(defun orrery--summary (value)
  "Return a short text for the JSON VALUE."
  (cond ((stringp value) value)
        ((and (listp value) (plist-get value :message)))
        (t (format "%S" value))))

;;;; Starting Orrery beside the user's server

(autoload 'orrery-companion-mode "orrery-companion"
  "Run Orrery for this buffer over a connection of its own." t)

(defvar orrery--beside-functions nil
  "Functions returning the names of other language servers in this buffer.")

(defun orrery--lsp-mode-here-p ()
  "Return non-nil if lsp-mode manages this buffer, or is about to."
  (or (bound-and-true-p lsp-mode) (bound-and-true-p lsp--buffer-deferred)))

(defun orrery--effective-client ()
  "Return the way Orrery is run here: `companion', `lsp-mode' or `eglot'."
  (pcase orrery-client
    ('auto (if (orrery--lsp-mode-here-p) 'lsp-mode 'companion))
    (client client)))

(defun orrery--ensure-now (now)
  "Start Orrery for this buffer per `orrery-client'.
NOW non-nil starts an eglot connection at once instead of through
`eglot-ensure'."
  (when (and buffer-file-name (orrery--elixir-buffer-p))
    (pcase (orrery--effective-client)
      ('eglot (if now (apply #'eglot (eglot--guess-contact)) (eglot-ensure)))
      ('companion (unless (bound-and-true-p orrery-companion-mode)
                    (orrery-companion-mode 1)))
      ;; lsp-mode starts Orrery's add-on client with the buffer's other servers.
      ('lsp-mode nil))))

;;;###autoload
(defun orrery-ensure (&optional now)
  "Start Orrery for this Elixir buffer, beside the user's language server.
What runs follows `orrery-client': for `companion' (and `auto' where
lsp-mode does not manage the buffer) `orrery-companion-mode'; for
`eglot', eglot with Orrery as the buffer's server; with lsp-mode,
Orrery's add-on client starts with lsp-mode's own servers.  Meant for
Elixir mode hooks (`elixir-mode-hook', `elixir-ts-mode-hook'): the
choice is made once the hooks have run, so their order does not
matter.  NOW non-nil (interactively) decides at once."
  (interactive (list t))
  (orrery--sync-eglot-registration)
  (if now
      (orrery--ensure-now t)
    (let ((buf (current-buffer)))
      (run-at-time 0 nil (lambda ()
                           (when (buffer-live-p buf)
                             (with-current-buffer buf (orrery--ensure-now nil))))))))

(defun orrery--beside ()
  "Return the names of the other language servers of this buffer."
  (append
   (let ((e (and (fboundp 'eglot-current-server) (eglot-current-server))))
     (and e (not (cl-typep e 'orrery-eglot-server)) (jsonrpc-running-p e)
          (list (format "eglot: %s"
                        (or (plist-get (eglot--server-info e) :name)
                            (jsonrpc-name e))))))
   (apply #'append (mapcar #'funcall orrery--beside-functions))))

;;;###autoload
(defun orrery-doctor ()
  "Show the way Orrery is run here, beside what, and what it attached.
Show it in the *Orrery doctor* buffer and return a plist with :client
\(`companion', `lsp-mode' or `eglot'), :running, :beside (the other
servers) and :status (the `orrery/status' answer, when running)."
  (interactive)
  (let* ((server (orrery--buffer-server))
         (client (if server (orrery--server-kind server) (orrery--effective-client)))
         (beside (orrery--beside))
         (status (and server (ignore-errors
                               (orrery--request-sync server :orrery/status nil))))
         (lines
          (list
           (format "orrery-client: %s%s" orrery-client
                   (if (eq orrery-client client) "" (format " (here: %s)" client)))
           (if server
               (format "Orrery runs here as %s for %s"
                       (pcase client
                         ('companion "a companion connection (orrery-companion-mode)")
                         ('lsp-mode "lsp-mode's add-on client `orrery'")
                         (_ "eglot's server"))
                       (orrery--server-root server))
             "Orrery does not run in this buffer: M-x orrery-ensure starts it")
           (format "Static features (symbols, definition, completion): %s"
                   (let ((v (plist-get (orrery-settings (not (eq client 'eglot)))
                                       :staticFeatures)))
                     (if (equal v "off") "off, left to the other server" "on")))
           (format "Beside: %s" (if beside (string-join beside ", ")
                                  "no other language server in this buffer"))
           (if status (orrery--describe-status status) "Orrery: no status"))))
    (with-current-buffer (get-buffer-create "*Orrery doctor*")
      (let ((inhibit-read-only t))
        (erase-buffer)
        (insert (string-join lines "\n") "\n"))
      (special-mode))
    (when (called-interactively-p 'interactive)
      (display-buffer "*Orrery doctor*"))
    (message "%s" (string-join lines "; "))
    (list :client client :running (and server t) :beside beside :status status)))

;;;; Key map

(defvar orrery-command-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "a") #'orrery-attach)
    (define-key map (kbd "s") #'orrery-status)
    (define-key map (kbd "d") #'orrery-doctor)
    (define-key map (kbd "i") #'orrery-inspect)
    (define-key map (kbd "p") #'orrery-processes)
    (define-key map (kbd "r") #'orrery-refresh)
    (define-key map (kbd "R") #'orrery-rollback)
    (define-key map (kbd "b") #'orrery-step-back)
    (define-key map (kbd "B") #'orrery-reverse-continue)
    (define-key map (kbd "t") #'orrery-debug-test-at-point)
    (define-key map (kbd "T") #'orrery-timeline)
    (define-key map (kbd "S") #'orrery-state-history)
    (define-key map (kbd "V") #'orrery-value-history)
    map)
  "Orrery's commands, for binding to a prefix key.")
(fset 'orrery-command-map orrery-command-map)

(autoload 'orrery-step-back "orrery-debug"
  "Step back one step in the stopped debug session." t)
(autoload 'orrery-reverse-continue "orrery-debug"
  "Run backwards to the previous breakpoint in the stopped debug session." t)
(autoload 'orrery-debug-test-at-point "orrery-debug"
  "Debug the ExUnit test at point with dape or dap-mode." t)
(autoload 'orrery-debug-test-start "orrery-debug"
  "Start the launch CONFIG of a \"Debug test\" lens.")
(autoload 'orrery-timeline "orrery-history"
  "Show the recorded timeline of MODULE in the current debug session." t)
(autoload 'orrery-state-history "orrery-history"
  "Show the state history of the GenServer MODULE in the current debug session." t)
(autoload 'orrery-value-history "orrery-history"
  "Show every value VARIABLE took in the current debug session's recording." t)

(provide 'orrery)

;; Register the debugger integration once a DAP client is loaded.
(declare-function orrery-dap-register "orrery-debug" ())
(declare-function orrery-dape-register "orrery-debug" ())
;; Orrery as an lsp-mode add-on client, beside the user's server.
(with-eval-after-load 'lsp-mode
  (require 'orrery-lsp-mode))
(with-eval-after-load 'dap-mode
  (require 'orrery-debug)
  (orrery-dap-register))
(with-eval-after-load 'dape
  (require 'orrery-debug)
  (orrery-dape-register))

;;; orrery.el ends here
