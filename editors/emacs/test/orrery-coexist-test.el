;;; orrery-coexist-test.el --- Orrery beside another language server  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by ../test.sh on Emacs 28 (eglot 1.9, lsp-mode 8.0.0 from Debian) and
;; Emacs 30 (eglot 1.17), against a real kv node.  The "user's server" is
;; tests/static-ls/static_ls.py, a tiny static language server of the test's
;; own making that answers hover, completion, symbols and definition with
;; "STATIC-LS" markers.  Tests run in name order:
;;   orrery-coexist-0-*  no node: eglot keeps the user's server unless asked;
;;   orrery-coexist-1-*  eglot runs the static server, `orrery-companion-mode'
;;                       runs Orrery beside it in the same buffer;
;;   orrery-coexist-2-*  lsp-mode runs the static server and Orrery's add-on
;;                       client in the same buffer.
;; Each live test ends with Orrery shut down and the node as found (agent gone).

;;; Code:

(require 'orrery-test-helpers)
(require 'orrery)
(require 'orrery-companion)
(require 'orrery-live)
(require 'eglot)
(require 'flymake)

(defconst orrery-coexist-static-ls
  (expand-file-name "tests/static-ls/static_ls.py" orrery-test-repo)
  "The static language server standing in for Expert or ElixirLS.")

(defvar orrery-coexist--log (make-temp-file "orrery-static-ls-" nil ".log")
  "Where the static server logs the methods it receives.")

(defun orrery-coexist--static-contact ()
  "Return the command running the static server."
  (list "python3" orrery-coexist-static-ls "--log" orrery-coexist--log))

(defun orrery-coexist--setup ()
  "Point Orrery at the test node."
  (setq orrery-executable orrery-test-bin
        orrery-node orrery-test-node
        orrery-cookie-file orrery-test-cookie-file
        orrery-refresh-interval nil
        eglot-sync-connect 30))

(defun orrery-coexist--open (file)
  "Visit FILE of the kv fixture in a fresh buffer and show it."
  (let ((path (expand-file-name file orrery-test-fixture)))
    (when-let ((old (get-file-buffer path))) (kill-buffer old))
    (let ((buf (find-file-noselect path)))
      (switch-to-buffer buf)
      buf)))

(defun orrery-coexist--line-overlays (line prop)
  "Return the texts of overlays with PROP on LINE (1-based) of the buffer."
  (save-excursion
    (goto-char (point-min))
    (forward-line (1- line))
    (delq nil
          (mapcar (lambda (o)
                    (when (overlay-get o prop)
                      (substring-no-properties
                       (or (overlay-get o 'after-string)
                           (overlay-get o 'before-string) ""))))
                  (overlays-in (line-beginning-position)
                               (min (point-max) (1+ (line-end-position))))))))

(defun orrery-coexist--overlay-on (line prop regexp)
  "Return the overlay text with PROP on LINE matching REGEXP, or nil."
  (cl-find-if (lambda (s) (string-match-p regexp s))
              (orrery-coexist--line-overlays line prop)))

(defun orrery-coexist--eldoc ()
  "Call every function of `eldoc-documentation-functions'; return their docs.
The list is filled in as the answers arrive."
  (let ((docs (list 'docs)))
    (dolist (f eldoc-documentation-functions)
      (when (functionp f)
        (let ((r (funcall f (lambda (doc &rest _)
                              (when doc (nconc docs (list (substring-no-properties doc))))))))
          (when (stringp r) (nconc docs (list r))))))
    docs))

(defun orrery-coexist--agent-gone ()
  "Wait until the node runs no Orrery agent: it is left as found."
  (orrery-test-wait "the node without Orrery's agent" 60
                    (lambda ()
                      (equal (orrery-test-rpc ":code" "is_loaded" "[:orrery_agent_v1]")
                             "false"))))

(defun orrery-coexist--log-has (method)
  "Return non-nil if the static server received METHOD."
  (with-temp-buffer
    (insert-file-contents orrery-coexist--log)
    (goto-char (point-min))
    (re-search-forward (concat "^" (regexp-quote method) "$") nil t)))

(defun orrery-coexist--both-p (docs)
  "Return non-nil if DOCS has the static hover and Orrery's live state."
  (and (cl-some (lambda (x) (and (stringp x) (string-match-p "STATIC-LS hover" x))) docs)
       (cl-some (lambda (x) (and (stringp x) (string-match-p "%{" x))) docs)))

;;;; Without a node

(ert-deftest orrery-coexist-0-eglot-keeps-the-users-server ()
  "Eglot runs the user's server for Elixir unless `orrery-client' is `eglot'."
  (let ((mine (lambda () (cl-find #'orrery-eglot-contact eglot-server-programs
                                  :key #'cdr-safe))))
    (should (eq orrery-client 'auto))
    (should-not (funcall mine))
    (customize-set-variable 'orrery-client 'eglot)
    (unwind-protect
        (should (funcall mine))
      (customize-set-variable 'orrery-client 'auto))
    (should-not (funcall mine)))
  ;; Beside another server the static features are off; alone they are on.
  (should (equal (plist-get (orrery-settings t) :staticFeatures) "off"))
  (should-not (plist-member (orrery-settings) :staticFeatures))
  (let ((orrery-static-features t))
    (should (equal (plist-get (orrery-settings t) :staticFeatures) "on"))))

;;;; eglot + companion

(ert-deftest orrery-coexist-1-eglot-and-companion ()
  "Eglot keeps the static server; `orrery-companion-mode' adds Orrery beside it.
Both answer in one buffer: eldoc gets the static hover and Orrery's live
one, Orrery's overlays show live values, eglot's symbols are the static
server's, and Orrery answers no static request."
  (orrery-test-require-node)
  (orrery-coexist--setup)
  (let ((eglot-server-programs
         (cons (cons '(orrery-elixir-mode elixir-mode elixir-ts-mode)
                     (orrery-coexist--static-contact))
               eglot-server-programs))
        (buf (orrery-coexist--open "lib/kv/bucket.ex"))
        static conn)
    (unwind-protect
        (with-current-buffer buf
          (apply #'eglot (eglot--guess-contact))
          (orrery-test-wait "eglot to manage bucket.ex" 30
                            (lambda () (bound-and-true-p eglot--managed-mode)))
          (setq static (eglot-current-server))
          (orrery-ensure t)
          (should orrery-companion-mode)
          (should orrery-live-mode)
          (setq conn (orrery--server))
          (should (cl-typep conn 'orrery-connection))
          (should (eq (orrery--server-kind conn) 'companion))
          ;; Eglot's server is untouched: still the static one, answering.
          (should (eq (eglot-current-server) static))
          (should-not (cl-typep static 'orrery-eglot-server))
          (should (equal (process-command (jsonrpc--process static))
                         (orrery-coexist--static-contact)))
          (should (equal (cdr (cl-find 'orrery-elixir-mode eglot-server-programs
                                       :key (lambda (e) (car-safe (car-safe e)))))
                         (orrery-coexist--static-contact)))
          (let ((syms (jsonrpc-request static :textDocument/documentSymbol
                                       (list :textDocument (eglot--TextDocumentIdentifier)))))
            (should (equal (plist-get (aref syms 0) :name) "StaticLsSymbol")))
          (orrery-test-wait "Orrery to attach" 60
                            (lambda () (eq t (plist-get (orrery-request :orrery/status)
                                                        :attached))))
          ;; Orrery answers no static request beside the static server.
          (should-not (orrery-request :textDocument/documentSymbol
                                      (list :textDocument (eglot--TextDocumentIdentifier))))
          ;; Hover: eldoc gets both, composed.
          (should (eq eldoc-documentation-strategy #'eldoc-documentation-compose))
          (should (memq #'orrery-eldoc-function eldoc-documentation-functions))
          (goto-char (point-min))
          (search-forward "KV.Buck")
          (let ((docs (orrery-test-wait
                       "eldoc with the static hover and Orrery's live state" 60
                       (lambda ()
                         (let ((d (orrery-coexist--eldoc))
                               (deadline (+ (float-time) 5)))
                           (while (and (not (orrery-coexist--both-p d))
                                       (< (float-time) deadline))
                             (accept-process-output nil 0.05))
                           (and (orrery-coexist--both-p d) d))))))
            ;; Two separate entries: neither server's text is inside the other's.
            (should-not (cl-some (lambda (x) (and (stringp x)
                                                  (string-match-p "STATIC-LS" x)
                                                  (string-match-p "%{" x)))
                                 docs)))
          ;; Overlays: the lens above line 1, the hint after `use GenServer'.
          (orrery-test-wait "the \"1 live process\" overlay on line 1" 60
                            (lambda () (orrery-coexist--overlay-on 1 'orrery-lens
                                                                   "1 live process")))
          (should (string-match-p
                   "1 proc · %{"
                   (orrery-test-wait "the \"1 proc\" hint on line 6" 60
                                     (lambda () (orrery-coexist--overlay-on
                                                 6 'orrery-hint "1 proc")))))
          (should (orrery-coexist--log-has "textDocument/hover"))
          ;; The doctor says what runs, beside what, attached where.
          (let ((d (orrery-doctor)))
            (should (eq (plist-get d :client) 'companion))
            (should (equal (plist-get d :beside) '("eglot: static-ls")))
            (should (eq t (plist-get (plist-get d :status) :attached)))
            (with-current-buffer "*Orrery doctor*"
              (should (string-match-p "Static features.*: off" (buffer-string)))
              (should (string-match-p (regexp-quote orrery-test-node) (buffer-string))))))
      (when (buffer-live-p buf)
        (with-current-buffer buf
          (when orrery-companion-mode (orrery-companion-mode -1))))
      (orrery-companion-shutdown-all)
      (when (and static (jsonrpc-running-p static)) (eglot-shutdown static))
      (when (buffer-live-p buf) (kill-buffer buf)))
    (should-not (and conn (jsonrpc-running-p conn)))
    (should (= 0 (hash-table-count orrery--connections)))
    (orrery-coexist--agent-gone)))

(ert-deftest orrery-coexist-1b-save-diagnostics ()
  "A save that does not compile shows Orrery's errors through flymake.
Nothing is loaded (the file never compiled), and the file is removed after."
  (orrery-test-require-node)
  (orrery-coexist--setup)
  (let* ((file (expand-file-name "lib/kv/coexist_broken.ex" orrery-test-fixture))
         buf)
    (with-temp-file file
      (insert "defmodule KV.CoexistBroken do\n  def f(x), do: x +\nend\n"))
    (unwind-protect
        (progn
          (setq buf (orrery-coexist--open "lib/kv/coexist_broken.ex"))
          (with-current-buffer buf
            (orrery-ensure t)
            (should orrery-companion-mode)
            (should (memq #'orrery-flymake-backend flymake-diagnostic-functions))
            (flymake-mode 1)
            (orrery-test-wait "Orrery to attach" 60
                              (lambda () (eq t (plist-get (orrery-request :orrery/status)
                                                          :attached))))
            (set-buffer-modified-p t)
            (let ((make-backup-files nil)) (save-buffer))
            (let ((diag (orrery-test-wait
                         "Orrery's compile error in flymake" 60
                         (lambda ()
                           (cl-find-if (lambda (d) (string-prefix-p
                                                    "Orrery: " (flymake-diagnostic-text d)))
                                       (flymake-diagnostics))))))
              (should (eq (flymake-diagnostic-type diag) :error)))
            (should (equal (orrery-test-rpc ":code" "is_loaded" "[KV.CoexistBroken]")
                           "false"))))
      (when (buffer-live-p buf)
        (with-current-buffer buf (set-buffer-modified-p nil))
        (kill-buffer buf))
      (delete-file file)
      (orrery-companion-shutdown-all))
    (orrery-coexist--agent-gone)))

;;;; lsp-mode + add-on

(defvar lsp-session-file)
(defvar lsp-auto-guess-root)
(defvar lsp-enable-file-watchers)
(defvar lsp-client-packages)
(defvar lsp-restart)
(defvar lsp-keep-workspace-alive)
(defvar lsp-headerline-breadcrumb-enable)
(defvar lsp-modeline-code-actions-enable)
(defvar lsp-modeline-diagnostics-enable)
(defvar lsp-enable-snippet)
(defvar lsp-response-timeout)
(defvar lsp-log-io)
(defvar lsp-auto-configure)
(declare-function lsp "lsp-mode" (&optional arg))
(declare-function lsp-workspaces "lsp-mode" ())
(declare-function lsp-request "lsp-mode" (method params &rest args))
(declare-function lsp--text-document-position-params "lsp-mode" (&optional identifier position))
(declare-function lsp--text-document-identifier "lsp-mode" ())
(declare-function lsp--workspace-status "lsp-mode" (workspace))
(declare-function lsp--workspace-client "lsp-mode" (workspace))
(declare-function lsp--client-server-id "lsp-mode" (client))
(declare-function lsp-workspace-shutdown "lsp-mode" (workspace))
(declare-function lsp-workspace-folders-add "lsp-mode" (project-root))
(declare-function lsp-register-client "lsp-mode" (client))
(declare-function make-lsp-client "lsp-mode" (&rest args))
(declare-function lsp-stdio-connection "lsp-mode" (command &optional test-command))

(defun orrery-coexist--lsp-ids ()
  "Return the server ids of the buffer's initialized lsp-mode workspaces."
  (sort (mapcar (lambda (w) (lsp--client-server-id (lsp--workspace-client w)))
                (seq-filter (lambda (w) (eq (lsp--workspace-status w) 'initialized))
                            (lsp-workspaces)))
        (lambda (a b) (string< (symbol-name a) (symbol-name b)))))

(ert-deftest orrery-coexist-2-lsp-mode-add-on ()
  "Lsp-mode runs the static server and Orrery's add-on client in one buffer.
Both answer: the hover is merged (static text and live state), completion
and symbols come from the static server only, Orrery's hint overlays show
live values, and Orrery's commands work on the add-on's workspace."
  (orrery-test-require-node)
  (orrery-coexist--setup)
  (setq lsp-session-file (make-temp-file "orrery-lsp-session-")
        lsp-auto-guess-root nil
        lsp-enable-file-watchers nil
        lsp-client-packages nil
        lsp-restart 'ignore
        lsp-keep-workspace-alive nil
        lsp-headerline-breadcrumb-enable nil
        lsp-modeline-code-actions-enable nil
        lsp-modeline-diagnostics-enable nil
        lsp-enable-snippet nil
        lsp-response-timeout 30
        lsp-log-io t
        ;; No optional lsp-mode modules (modeline, lens, ...) in batch.
        lsp-auto-configure nil)
  (when (>= emacs-major-version 30)
    ;; Debian's lsp-mode and dash are byte-compiled by Emacs 28, whose closures
    ;; Emacs 30 cannot call: load their sources instead (users of Emacs 30 have
    ;; lsp-mode compiled by their own Emacs).
    (dolist (pkg '("lv" "markdown-mode" "spinner" "s" "ht" "f" "dash" "lsp-mode"))
      (let ((dir (car (file-expand-wildcards
                       (format "/usr/share/emacs/site-lisp/elpa-src/%s-[0-9]*" pkg)))))
        (when dir (push dir load-path)))))
  (require 'lsp-mode)
  (should (featurep 'orrery-lsp-mode))
  (lsp-register-client
   (make-lsp-client
    :new-connection (lsp-stdio-connection (orrery-coexist--static-contact))
    :major-modes '(orrery-elixir-mode elixir-mode elixir-ts-mode)
    :server-id 'static-ls
    :priority 10))
  (lsp-workspace-folders-add (directory-file-name orrery-test-fixture))
  (let ((buf (orrery-coexist--open "lib/kv/bucket.ex"))
        ;; lsp-mode 8 announces no refreshSupport (unless `lsp-lens-enable'), so
        ;; Orrery sends no refresh requests: live values refresh on the timer.
        (orrery-refresh-interval 0.5)
        workspaces)
    (unwind-protect
        (with-current-buffer buf
          (lsp)
          (orrery-test-wait "lsp-mode to run static-ls and orrery" 60
                            (lambda () (equal (orrery-coexist--lsp-ids)
                                              '(orrery static-ls))))
          (setq workspaces (lsp-workspaces))
          (should-not (bound-and-true-p orrery-companion-mode))
          (let ((server (orrery--server)))
            (should (eq (orrery--server-kind server) 'lsp-mode))
            (orrery-test-wait "Orrery to attach" 60
                              (lambda () (eq t (plist-get (orrery-request :orrery/status)
                                                          :attached)))))
          (should orrery-live-mode)
          ;; The merged hover has both answers.
          (goto-char (point-min))
          (search-forward "KV.Buck")
          (let ((hover (orrery-test-wait
                        "a merged hover with the live state" 60
                        (lambda ()
                          (let ((h (prin1-to-string
                                    (lsp-request "textDocument/hover"
                                                 (lsp--text-document-position-params)))))
                            (and (string-match-p "%{" h) h))))))
            (should (string-match-p "STATIC-LS hover" hover)))
          ;; Completion and symbols: the static server's only, nothing twice.
          (goto-char (point-min))
          (search-forward "Map.")
          (let ((items (lsp-request "textDocument/completion"
                                    (lsp--text-document-position-params))))
            (should (string-match-p "static_ls_completion" (prin1-to-string items)))
            (should-not (string-match-p "\"put\"\\|put/3" (prin1-to-string items))))
          (let ((syms (prin1-to-string
                       (lsp-request "textDocument/documentSymbol"
                                    (list :textDocument (lsp--text-document-identifier))))))
            (should (string-match-p "StaticLsSymbol" syms))
            (should-not (string-match-p "start_link" syms)))
          ;; Hints as overlays of this package (lsp-mode 8 has no inlay hints).
          (should (string-match-p
                   "1 proc · %{"
                   (orrery-test-wait "the \"1 proc\" hint on line 6" 60
                                     (lambda () (orrery-coexist--overlay-on
                                                 6 'orrery-hint "1 proc")))))
          ;; Lenses through the add-on's workspace, and the doctor.
          (should (string-match-p
                   "live process"
                   (prin1-to-string
                    (orrery-request :textDocument/codeLens
                                    (list :textDocument (lsp--text-document-identifier))))))
          (let ((d (orrery-doctor)))
            (should (eq (plist-get d :client) 'lsp-mode))
            (should (member "lsp-mode: static-ls" (plist-get d :beside)))
            (should (eq t (plist-get (plist-get d :status) :attached)))))
      (orrery--stop-timer)
      (dolist (w workspaces) (ignore-errors (lsp-workspace-shutdown w)))
      (when (buffer-live-p buf) (kill-buffer buf)))
    (orrery-coexist--agent-gone)))

(provide 'orrery-coexist-test)
;;; orrery-coexist-test.el ends here
