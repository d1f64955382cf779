;;; orrery-lint.el --- Byte-compile and checkdoc the Orrery package  -*- lexical-binding: t; -*-

;;; Commentary:

;; Used by ../test.sh: (orrery-lint-batch DIR) copies the package's files
;; into DIR, byte-compiles them there with warnings as errors, runs checkdoc
;; on them, and exits non-zero if anything was reported.

;;; Code:

(require 'bytecomp)
(require 'checkdoc)

(defconst orrery-lint-files
  '("orrery.el" "orrery-live.el" "orrery-views.el" "orrery-debug.el"
    "orrery-history.el" "orrery-companion.el" "orrery-lsp-mode.el")
  "The package's files.")

(defconst orrery-lint-dir
  (file-name-directory (directory-file-name
                        (file-name-directory (or load-file-name buffer-file-name))))
  "The package directory.")

(defun orrery-lint--compile (file)
  "Byte-compile FILE with warnings as errors; return non-nil if clean."
  (let ((byte-compile-error-on-warn t))
    (condition-case err
        (byte-compile-file file)
      (error (message "%s: %s" file (error-message-string err)) nil))))

(defun orrery-lint--checkdoc (file)
  "Run checkdoc on FILE; return its complaints as a string, empty if none."
  (let ((buf (find-file-noselect file)))
    (with-current-buffer (get-buffer-create checkdoc-diagnostic-buffer)
      (let ((inhibit-read-only t)) (erase-buffer)))
    (with-current-buffer buf
      (checkdoc-current-buffer t))
    (with-current-buffer checkdoc-diagnostic-buffer
      (string-trim
       (replace-regexp-in-string
        "[\f]" ""
        (replace-regexp-in-string "^\\*\\*\\*.*checkdoc-current-buffer.*$" ""
                                  (buffer-string)))))))

(defun orrery-lint-batch (dest)
  "Copy the package to DEST, byte-compile and checkdoc it there.
Exit 1 on any complaint."
  (let ((ok t)
        (load-path (cons dest load-path)))
    (make-directory dest t)
    (dolist (f orrery-lint-files)
      (copy-file (expand-file-name f orrery-lint-dir) (file-name-as-directory dest) t))
    (dolist (f orrery-lint-files)
      (let ((file (expand-file-name f dest)))
        (if (orrery-lint--compile file)
            (message "byte-compile %s: clean (Emacs %s)" f emacs-version)
          (setq ok nil)
          (message "byte-compile %s: FAILED" f))
        (let ((complaints (orrery-lint--checkdoc file)))
          (if (string-empty-p complaints)
              (message "checkdoc %s: clean" f)
            (setq ok nil)
            (message "checkdoc %s:\n%s" f complaints)))))
    (kill-emacs (if ok 0 1))))

(provide 'orrery-lint)
;;; orrery-lint.el ends here
