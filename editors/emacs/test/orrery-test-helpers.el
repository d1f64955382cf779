;;; orrery-test-helpers.el --- Shared helpers of the Orrery ERT tests  -*- lexical-binding: t; -*-

;;; Commentary:

;; Environment (set by ../test.sh):
;;   ORRERY_BIN               the orrery binary (default: target/release/orrery)
;;   ORRERY_FIXTURE           the kv fixture app (default: tests/fixtures/kv)
;;   ORRERY_TEST_NODE         name@host of a running kv node; live tests skip without it
;;   ORRERY_TEST_COOKIE_FILE  the node's cookie, in a file
;; Waiting is always for an event, with a deadline: no fixed sleeps.

;;; Code:

(require 'ert)
(require 'cl-lib)
(require 'subr-x)

(defconst orrery-test-repo
  (expand-file-name "../../.." (file-name-directory
                                (or load-file-name buffer-file-name)))
  "The repository root.")

(defconst orrery-test-bin
  (or (getenv "ORRERY_BIN")
      (expand-file-name "target/release/orrery" orrery-test-repo))
  "The orrery binary under test.")

(defconst orrery-test-fixture
  (file-name-as-directory
   (or (getenv "ORRERY_FIXTURE")
       (expand-file-name "tests/fixtures/kv" orrery-test-repo)))
  "The kv fixture application.")

(defconst orrery-test-node (getenv "ORRERY_TEST_NODE")
  "The running kv node, or nil.")

(defconst orrery-test-cookie-file (getenv "ORRERY_TEST_COOKIE_FILE")
  "A file holding the node's cookie, or nil.")

(defun orrery-test-require-node ()
  "Skip the current test unless a kv node is running."
  (unless (and orrery-test-node orrery-test-cookie-file)
    (ert-skip "no node: set ORRERY_TEST_NODE and ORRERY_TEST_COOKIE_FILE (../test.sh does)")))

(defun orrery-test-wait (what timeout pred)
  "Wait up to TIMEOUT seconds for PRED to return non-nil; return its value.
Fail the test naming WHAT on timeout.  Process output and timers
run while waiting."
  (let ((deadline (+ (float-time) timeout))
        result)
    (while (and (not (setq result (funcall pred)))
                (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (or result
        (ert-fail (format "timed out after %s s waiting for %s%s" timeout what
                          (if (functionp orrery-test-diagnostics)
                              (concat "\n" (funcall orrery-test-diagnostics))
                            ""))))))

(defvar orrery-test-diagnostics nil
  "A function returning text that helps understand a timeout, or nil.")

(defun orrery-test-cookie ()
  "Return the node's cookie."
  (with-temp-buffer
    (insert-file-contents orrery-test-cookie-file)
    (string-trim (buffer-string))))

(defun orrery-test-rpc (module fun args)
  "Call MODULE.FUN(ARGS...) on the test node from a hidden helper node.
ARGS is Elixir source for the argument list.  Return the printed result."
  (let* ((code (format "IO.inspect(:rpc.call(:\"%s\", %s, :%s, %s))"
                       orrery-test-node module fun args))
         (buf (generate-new-buffer " *orrery-test-rpc*"))
         (proc (make-process
                :name "orrery-test-rpc" :buffer buf :noquery t :sentinel #'ignore
                :command (list "elixir" "--sname"
                               (format "orrery_emacs_test_%d" (random 1000000000))
                               "--cookie" (orrery-test-cookie) "--hidden"
                               "-e" code))))
    (orrery-test-wait (format "%s.%s to return" module fun) 60
                      (lambda () (not (process-live-p proc))))
    (prog1 (with-current-buffer buf (string-trim (buffer-string)))
      (kill-buffer buf))))

(provide 'orrery-test-helpers)
;;; orrery-test-helpers.el ends here
